"""`tallyboard twitch`: a stream-migration tracker over the presence engine."""
