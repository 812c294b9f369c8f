"""What a call and the server's calls report about themselves (``stats()``), for /metrics and for a
relay worker's snapshots to the front: plain frozen values, read at once, never live objects."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.call.admission import AdmissionStats
from monitor.media.tracks import TrackStats


@dataclass(frozen=True, slots=True)
class DeviceStats:
    participant: str
    role: str  # policies.events.Role value
    media_connected: bool  # its WebRTC peer connection is connected
    tracks: tuple[TrackStats, ...]  # what it is sent


@dataclass(frozen=True, slots=True)
class TapStats:
    """One camera tapped for analysis."""

    participant: str
    key: str  # the source key the analysis pool knows it by
    seen: int  # frames the tap received


@dataclass(frozen=True, slots=True)
class CallStats:
    call_id: str
    state: str  # policies.decisions.State value
    devices: tuple[DeviceStats, ...]
    taps: tuple[TapStats, ...]


@dataclass(frozen=True, slots=True)
class CallsStats:
    calls: tuple[CallStats, ...]
    pending_results: int  # analysis results not yet handled by their call
    admission: AdmissionStats | None  # None: no capacity limit


__all__ = ["AdmissionStats", "CallStats", "CallsStats", "DeviceStats", "TapStats", "TrackStats"]
