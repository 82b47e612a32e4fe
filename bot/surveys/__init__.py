"""DM satisfaction surveys: rounds on a schedule (rounds.py), sending, reminders and results
(sender.py), the DM's buttons and comment modal (listeners.py), and the scheduler's tick
(tick.py). The store side is kpi/surveys.py."""
