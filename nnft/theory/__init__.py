"""Closed forms and quadratures: the exact theory the Monte Carlo is checked against."""
