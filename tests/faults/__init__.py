"""The fault-injection suite: malformed specs, bad datasets, damaged artifacts, interrupts.

Each case injects one fault and asserts the outcome a user meets: one clear error line and
exit status 1, or a correct run. docs/RELIABILITY.md tabulates the cases.
"""
