"""The discovery benchmark suite: laws (CSV), their units and split, the exact-match check."""
