"""Alerts: app.yaml's rules (settings/alerts.py) checked after every sync, each event posted once
to the rule's channel (`watch` sees, `events` decides, `job` claims and posts)."""
