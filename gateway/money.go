package gateway

import "aigw/money"

// NanoUSD is an amount of US dollars in billionths (1e-9 USD), exact (see
// package money): prices, budgets and costs in ledger events.
type NanoUSD = money.NanoUSD

// ParseNanoUSD parses a decimal number of dollars ("12", "0.25",
// "0.000000001") exactly; more than 9 decimals, a sign other than a
// leading '-', or an amount beyond the int64 range is an error.
func ParseNanoUSD(s string) (NanoUSD, error) { return money.Parse(s) }
