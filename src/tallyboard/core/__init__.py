"""Pure aggregation: what events do to state and how queries read it. No I/O, no HTTP."""
