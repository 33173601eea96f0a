"""The contact center: queues (skill groups), agents and their states, calls, and routing."""
