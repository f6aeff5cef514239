"""Orbax keys `_sharding` by the url-safe base64 of each parameter name."""

import base64

from hypothesis import given
from hypothesis import strategies as st

from tenure.io import shardings


@given(st.text())
def test_sharding_key_is_the_url_safe_base64_of_the_name(name: str) -> None:
    assert shardings.sharding_key(name) == base64.urlsafe_b64encode(name.encode()).decode()


def test_sharding_key_swaps_the_two_characters_urls_cannot_hold() -> None:
    # Standard base64 gives "Pj4+" and "Pz8/".
    assert shardings.sharding_key(">>>") == "Pj4-"
    assert shardings.sharding_key("???") == "Pz8_"
