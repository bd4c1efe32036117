"""Presence: sessions in rooms, their credit as a metric, migrations and concurrency."""
