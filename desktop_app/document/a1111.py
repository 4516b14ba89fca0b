"""The AUTOMATIC1111 ``parameters`` text: written into every PNG we save (other tools read it),
and read back, as far as it goes, from other tools' PNGs (document.metadata)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from desktop_app.document.job import SAMPLER_LABELS, JobKind, JobRequest, RequestError

_LABEL_TO_SAMPLER = {label.lower(): key for key, label in SAMPLER_LABELS.items()}

Warn = Callable[[str], None] | None


def _quote(value: str) -> str:
    """A1111 quotes a value (as JSON) only when it would break the comma-separated line."""
    if any(c in value for c in ',:\n"'):
        return json.dumps(value, ensure_ascii=False)
    return value


def a1111_parameters(request: JobRequest, model_name: str = "") -> str:
    """The ``parameters`` text in the AUTOMATIC1111 layout."""
    sampler = SAMPLER_LABELS.get(request.sampler, request.sampler)
    fields = [
        ("Steps", str(request.steps)),
        ("Sampler", sampler),
        ("CFG scale", repr(float(request.cfg_scale))),
        ("Seed", str(request.seed)),
        ("Size", f"{request.width}x{request.height}"),
    ]
    model = model_name or request.model
    if model:
        fields.append(("Model", model))
    if request.kind is not JobKind.TEXT_TO_IMAGE:
        fields.append(("Denoising strength", repr(float(request.strength))))
    if request.regions:
        fields.append(("Paint-with-words regions", str(len(request.regions))))
    lines = [request.prompt]
    if request.negative_prompt:
        lines.append(f"Negative prompt: {request.negative_prompt}")
    lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in fields))
    return "\n".join(lines)


_PARAM = re.compile(r'\s*([A-Za-z][\w \-/+.()]*):\s*("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)')


def _parse_param_line(line: str) -> dict[str, str] | None:
    """Key/value pairs of a settings line, or None when the line is not one (e.g. prompt text)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        m = _PARAM.match(line, pos)
        if m is None or m.end() == pos:
            return None
        value = m.group(2).strip()
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value.strip('"')
        out[m.group(1).strip()] = value
        pos = m.end()
    return out if len(out) >= 3 else None


def parse_a1111(text: str) -> tuple[str, str, dict[str, str]]:
    """Split A1111 ``parameters`` text into (prompt, negative prompt, settings). Like A1111, a
    trailing newline does not hide the settings line; Windows line ends are plain ones."""
    lines = text.replace("\r\n", "\n").strip().split("\n")
    settings = _parse_param_line(lines[-1]) if lines else None
    if settings is not None:
        lines = lines[:-1]
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        if not in_negative and line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].lstrip()
        (negative_lines if in_negative else prompt_lines).append(line)
    return "\n".join(prompt_lines), "\n".join(negative_lines), settings or {}


def _number(settings: dict[str, str], key: str, cast: Callable[[str], Any], default: Any) -> Any:
    if key not in settings:
        return default
    try:
        value = cast(settings[key])
        if not math.isfinite(value):  # "nan" and "inf" parse as floats
            raise ValueError(value)
        return value
    except ValueError:
        raise RequestError(f"metadata: {key} {settings[key]!r} is not a number") from None


# A1111 before 1.9 named the noise schedule in the sampler ("DPM++ 2M Karras"); since then it is a
# setting of its own ("Schedule type: Karras").
_SCHEDULE_SUFFIXES = (" Karras", " Exponential", " Polyexponential")


def _sampler(s: dict[str, str], warn: Warn) -> str:
    label = s.get("Sampler", "").strip()
    for suffix in _SCHEDULE_SUFFIXES:
        if label.lower().endswith(suffix.lower()) and "Schedule type" not in s:
            label = label[:-len(suffix)]
            s["Schedule type"] = suffix.strip()
    sampler = _LABEL_TO_SAMPLER.get(label.lower())
    if sampler is None:
        if label and warn is not None:
            warn(f"its sampler {s['Sampler']!r} is not one of this app's: restored as Euler")
        return "euler"
    return sampler


def request_from_a1111(text: str, warn: Warn = None) -> JobRequest:
    """Best-effort JobRequest from another tool's ``parameters``. It is always text-to-image: the
    text has no init image or mask; unknown settings are kept in ``extras["parameters"]``, and a
    sampler this app does not have is named to ``warn``."""
    prompt, negative, s = parse_a1111(text)
    width, height = 512, 512
    if "Size" in s:
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", s["Size"])
        if m is None:
            raise RequestError(f"metadata: Size {s['Size']!r} is not WIDTHxHEIGHT")
        width, height = int(m.group(1)), int(m.group(2))
    sampler = _sampler(s, warn)
    known = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model", "Denoising strength"}
    return JobRequest(
        kind=JobKind.TEXT_TO_IMAGE, prompt=prompt, negative_prompt=negative,
        steps=_number(s, "Steps", int, 20), sampler=sampler,
        cfg_scale=_number(s, "CFG scale", float, 7.5), seed=_number(s, "Seed", int, 0),
        width=width, height=height, strength=_number(s, "Denoising strength", float, 0.75),
        model=s.get("Model", ""),
        extras={"parameters": {k: v for k, v in s.items() if k not in known}},
    )
