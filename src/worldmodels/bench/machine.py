"""What a benchmark prints about the machine it ran on."""

from __future__ import annotations


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo where there is one (platform.processor() is often
    empty on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
