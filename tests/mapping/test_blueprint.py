"""The default blueprint file, user overrides, and one-line errors naming file and field."""

from __future__ import annotations

import pytest

from toolkit.blueprint import DEFAULT_BLUEPRINT, load_blueprint
from toolkit.errors import BlueprintError, UserInputError


def test_default_file_holds_the_seed_table():
    bp = load_blueprint()
    assert bp.source == str(DEFAULT_BLUEPRINT)
    assert {bp.key_for(n) for n in ("Order Completed", "order_completed", "purchase")} == {"purchase"}
    assert bp.key_for("Checkout Started") == "begin_checkout"
    assert bp.key_for("my_custom") == "my_custom"
    assert bp.revenue_events == {"purchase", "begin_checkout"}
    assert bp.revenue_keys == ("revenue", "total", "value")
    assert bp.skip_types == {"page", "identify", "group", "screen"}
    assert "Experiment Viewed" in bp.activations.events


def test_user_file_extends_and_overrides(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[events]\n"Order Completed" = "order"\n"Lead" = "lead_created"\n'
                 '[revenue]\ndefault_currency = "gbp"\nevents = ["order"]\n')
    bp = load_blueprint(p)
    assert bp.key_for("Order Completed") == "order"  # overridden
    assert bp.key_for("Lead") == "lead_created"  # added
    assert bp.key_for("Product Added") == "add_to_cart"  # kept from the default
    assert bp.default_currency == "GBP" and bp.revenue_events == {"order"}
    assert bp.revenue_keys == ("revenue", "total", "value")


def test_user_file_can_start_from_nothing(tmp_path):
    p = tmp_path / "alone.toml"
    p.write_text('extends = false\n[events]\n"A" = "a"\n[unmapped]\npass_through = false\n')
    bp = load_blueprint(p)
    assert bp.key_for("A") == "a" and bp.key_for("Order Completed") is None


@pytest.mark.parametrize(("text", "field"), [
    ('[revenue]\ndefault_curency = "USD"\n', "revenue.default_curency"),
    ('[revenue]\nallow_refunds = "yes"\n', "revenue.allow_refunds"),
    ('[revenue]\ndefault_currency = "XYZ"\n', "revenue.default_currency"),
    ('[tags]\nlists = "sum"\n', "tags.lists"),
    ('[events]\n"Order Completed" = ""\n', 'events."Order Completed"'),
    ('[skip]\ntypes = [1, 2]\n', "skip.types"),
    ('[mapping]\nx = 1\n', "mapping"),
    ('verison = 1\n', "verison"),
])
def test_bad_fields_name_file_and_field(tmp_path, text, field):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(BlueprintError) as exc:
        load_blueprint(p)
    msg = str(exc.value)
    assert str(p) in msg and f"field {field}" in msg and "\n" not in msg
    assert isinstance(exc.value, UserInputError) and exc.value.exit_code == 2


def test_unreadable_files(tmp_path):
    with pytest.raises(BlueprintError, match="file not found"):
        load_blueprint(tmp_path / "missing.toml")
    p = tmp_path / "broken.toml"
    p.write_text("[events\n")
    with pytest.raises(BlueprintError, match="not valid TOML"):
        load_blueprint(p)
