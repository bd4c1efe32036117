"""Local stand-ins for the services tallyboard's bots talk to (Discord, Twitch), speaking
their real wire protocols on 127.0.0.1: the tests and the benchmarks run the unmodified
client libraries and the bots against them, since the real services cannot be reached."""
