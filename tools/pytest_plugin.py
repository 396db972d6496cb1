"""pytest plugin (entry point `gbhub`): the `premises` fixture lands here with the virtual premises."""
