"""Ledger: mutual-credit tallies between two people, signed chits, lifts around a cycle of
tallies, and a personal ledger (issue 14)."""
