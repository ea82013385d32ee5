"""Running strategies over datasets and recording what they produced."""
