"""What is possible and what it is worth: arms and options, predictions, pricing, the option space."""
