"""End-customer profiles: phone numbers, addresses, tiers, contact timeline, imports."""
