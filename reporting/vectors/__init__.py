"""Published test vectors of the reporting formats, and the seeded scripts that generate them."""
