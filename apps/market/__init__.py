"""Market: shops, search through competing indexes, offers, auctions, deals with escrow and
shipping, and ratings only a real counterparty can give (issue 15)."""
