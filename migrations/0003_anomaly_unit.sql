-- Anomalies and incidents say which unit value/threshold/baseline are in (usd, sigma, ratio, ...).
ALTER TABLE anomalies ADD COLUMN unit text NOT NULL DEFAULT 'usd';
ALTER TABLE incidents ADD COLUMN unit text NOT NULL DEFAULT 'usd';
