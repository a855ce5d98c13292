"""Scheduled retraining: the retrain flow as a Prefect deployment with a cron schedule."""
