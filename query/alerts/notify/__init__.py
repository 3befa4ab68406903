"""Notification channels and the queue that delivers to them (see dispatcher.py)."""
