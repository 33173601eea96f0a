"""Tenants (clients with branches, outsourcing operators), users, roles, hosted seats, audit."""
