"""One module per paper: its losses and LightningModules."""
