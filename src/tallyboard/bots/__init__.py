"""Chat-platform bots: thin adapters that turn platform events into engine calls.

``state`` keeps what a bot must not forget across restarts (countdowns, errors, per-guild
settings), ``countdown`` and ``chart`` are pure helpers, ``discord/`` is the Discord bot.
"""
