"""The multi-view tab's rules, free of Gradio: the four views in the contract's order (front, left, back, right,
the object turned a quarter turn clockwise between shots) and what a multi-view upload needs."""

from __future__ import annotations

from collections.abc import Sequence

from image2model.core.models import GeneratorInfo, ModelsAvailable

VIEWS = ("front", "left", "back", "right")
"""The drop zones, in the order the API takes the views."""
HINTS = {
    "front": "the side you call the front",
    "left": "turned a quarter turn clockwise (seen from above): its left side faces you",
    "back": "turned half way round",
    "right": "turned three quarters: its right side faces you",
}


def ordered_views(values: Sequence[str | None], most: int = len(VIEWS)) -> list[str]:
    """The filled views' files in the API's order; ValueError with a sentence for the user unless 2 to `most`
    are filled. `values` holds one entry per zone of `VIEWS` (None or "" when empty)."""
    if len(values) != len(VIEWS):
        raise ValueError(f"expected {len(VIEWS)} views, got {len(values)}")
    filled = [(name, v) for name, v in zip(VIEWS, values, strict=True) if v]
    if len(filled) < 2:
        have = f"only the {filled[0][0]} view" if filled else "no view"
        raise ValueError(
            f"A multi-view model needs at least 2 views of the same object; there is {have}. "
            "Drop photos into two to four of the zones (front, left, back, right)."
        )
    if len(filled) > most:
        raise ValueError(f"This generator takes at most {most} views; clear {len(filled) - most} of them.")
    return [v for _, v in filled if v]


def multiview_generators(catalog: ModelsAvailable) -> list[GeneratorInfo]:
    """The generators that make one model from several views (`max_images_per_item` > 1), default first."""
    found = [g for g in catalog.models if g.max_images_per_item > 1]
    return sorted(found, key=lambda g: g.name != catalog.default)
