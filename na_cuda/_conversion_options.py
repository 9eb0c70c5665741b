"""Which ``rule_options`` a conversion takes (``na_cuda.nn.convert``, ``LIF.from_snntorch``; docs/convert.md).

A converted neuron's settings come from its source; options that the method would ignore, or that have no effect
on a spike output, raise. A leaf module: ``convert`` and ``snntorch`` both import it (``snntorch`` may not import
``convert``, which imports ``nn``, which imports ``snntorch``).
"""

from __future__ import annotations

from .rules import STBP

#: The converted neuron's own settings: they come from the source neuron, never from ``rule_options``.
_NEURON_KEYS = ("tau_m", "threshold", "v_reset", "decay_input", "output")
#: STBP's settings, all from the source neuron (its surrogate and reset detaching).
_STBP_KEYS = tuple(STBP.keywords())
#: ``rule_options`` each method accepts. The others would be silently ignored by a spike-output neuron, or would
#: change what the method promises, so they raise (see :func:`_check_rule_options`).
_RULE_OPTIONS = {"na": ("dist_power", "clip", "na_window", "backend", "grad_rescale"), "stbp": ("backend",)}
#: Keywords of ``na_cuda.nn.LIF`` that are accepted by it but have no effect on a converted (spike-output) neuron,
#: or that belong to the other method: why each one is refused.
_IGNORED_WHY = {
    "tau_s": "tau_s is the PSC time constant and converted neurons output spikes (output='spike'), so it has no effect",
    "first_order": "first_order only changes NA's gradient of a PSC output; converted neurons output spikes, so "
    "it has no effect",
}


def _check_rule_options(
    method: str, rule_options: dict, who: str = "na_cuda.nn.convert", neuron_keys: tuple[str, ...] = _NEURON_KEYS
) -> None:
    """``rule_options`` must be ones that ``method`` uses and that keep the source's forward. ``who``: the function
    in the messages; ``neuron_keys``: the settings that come from the source neuron (``LIF.from_snntorch`` passes
    its own)."""
    fixed = sorted(set(rule_options) & set(neuron_keys + (_STBP_KEYS if method == "stbp" else ())))
    if fixed:
        raise TypeError(
            f"{who}: {', '.join(fixed)} come from each converted neuron, not from `rule_options`; "
            "change them on the source model before converting"
        )
    if "strict_threshold" in rule_options and rule_options["strict_threshold"] is not False:
        raise ValueError(
            f"{who}: strict_threshold=True changes the forward: spikingjelly fires on "
            "v >= v_threshold (heaviside(0) = 1), strict_threshold=True only on v > threshold; convert promises "
            "the same forward, so leave strict_threshold out"
        )
    allowed = _RULE_OPTIONS[method]
    for key in rule_options:
        if key in allowed or key == "strict_threshold":
            continue
        if key in _IGNORED_WHY:
            raise TypeError(f"{who}: `{key}` is not accepted: {_IGNORED_WHY[key]}; leave it out")
        if key in _STBP_KEYS:  # under method="na"
            raise TypeError(
                f"{who}: `{key}` is STBP's, which method='na' would ignore (and under method='stbp' it "
                "comes from each neuron: its surrogate function / detach_reset); leave it out"
            )
        if key in _RULE_OPTIONS["na"]:  # under method="stbp"
            why = (
                "grad_rescale is NA's layer-wise gradient rescaling; under method='stbp' the converted model keeps "
                "the source's own gradient"
                if key == "grad_rescale"
                else f"`{key}` is an option of method='na', which method='stbp' would ignore"
            )
            raise TypeError(f"{who}: {why}; leave it out or convert with method='na'")
        raise TypeError(f"{who}: unknown rule option `{key}`; method={method!r} takes {', '.join(allowed)}")
