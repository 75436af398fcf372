"""Detectors, one small module per family, and the list a configuration asks for."""

from __future__ import annotations

from handoffd.privacy.detectors.base import Detector, TextIndex
from handoffd.privacy.detectors.contact import EmailDetector, PhoneDetector
from handoffd.privacy.detectors.custom import custom_detector
from handoffd.privacy.detectors.financial import CardDetector, IbanDetector, SsnDetector
from handoffd.privacy.detectors.network import IpDetector, MacDetector
from handoffd.privacy.detectors.secrets import SecretDetector
from handoffd.schema.privacy import PrivacyConfig

__all__ = ["Detector", "TextIndex", "builtin_detectors"]


def builtin_detectors(config: PrivacyConfig) -> list[Detector]:
    """Every built-in detector plus the owner's custom ones (NER is added by the scanner)."""
    detectors: list[Detector] = [
        SecretDetector(config.secrets),
        EmailDetector(),
        CardDetector(),
        IbanDetector(),
        SsnDetector(),
        IpDetector(),
        MacDetector(),
        PhoneDetector(config.phone_regions, config.phone_validation),
    ]
    detectors.extend(custom_detector(spec) for spec in config.custom)
    return detectors
