"""The Communications Hub: the CHF (HAN whitelist, trust centre, WAN/HAN router, alert buffer,
HAN time source) and the GPF. Imports han, wan, firmware and gbcs; never meter."""
from .chf import Chf
from .chf_log import ChfDeviceLogEntry, HistoricLogEntry
from .gpf import Gpf

__all__ = ["Chf", "ChfDeviceLogEntry", "Gpf", "HistoricLogEntry"]
