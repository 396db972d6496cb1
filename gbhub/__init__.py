"""gbhub: an emulated GB smart-metering (SMETS2) installation speaking GBCS end to end.

Installed, the distribution occupies two import names: `gbcs` (the sans-IO protocol core) and
`gbhub` (everything above it). The repository keeps one folder per layer at its top level;
`pyproject.toml` maps them into this package:

    gbhub.firmware  <- firmware/   the emulated embedded platform
    gbhub.han       <- han/        HAN links
    gbhub.wan       <- wan/        WAN bridges and the head-end client
    gbhub.hub       <- hub/        Comms Hub (CHF, GPF)
    gbhub.meter     <- meter/      meters and displays
    gbhub.tools     <- tools/      CLI, rig composition, PKI, bench, pytest plugin
"""

__version__ = "0.1.0"
