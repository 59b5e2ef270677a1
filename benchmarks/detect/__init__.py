"""The detection-quality benchmark: a faithful peer detector to compare with, and the scoring."""
