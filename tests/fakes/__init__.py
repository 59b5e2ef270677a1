"""Fake third parties as real HTTP servers on 127.0.0.1, speaking their documented wire format.

`tests.fakes.slack.FakeSlack` (Slack Web API) and `tests.fakes.resend.FakeResend` (Resend
`POST /emails`), each with a pytest fixture (`fake_slack`, `fake_resend`) in its module.
"""
