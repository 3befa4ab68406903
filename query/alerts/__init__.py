"""Alerts from logs: rules that watch queries, their states, and the notifications they send.

rules.py (the rule model) · evaluate.py (run a rule once) · state.py (the state machine and its
tables) · scheduler.py (evaluate on time, on one node) · silences.py · registry.py (rules from
the API and the rules file) · metrics.py (/metrics) · notify/ (Alertmanager, webhook, Slack,
apprise, and the queue that keeps a slow channel from holding up the rest) · api.py (HTTP).
"""
