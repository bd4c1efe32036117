"""The Discord bot (`tallyboard discord`): voice time as tallyboard presence, /top /stats
/streak /settings, and durable countdowns. One cog a feature; `bot.py` wires them."""
