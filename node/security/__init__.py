"""Who is calling and how answers are signed: credentials → principals, signing keys."""
