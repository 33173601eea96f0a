"""Pickup and delivery orders: booking, dispatch to depots by zone, notifications, tracking."""
