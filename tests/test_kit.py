"""The starter kit the wheel carries: the shipped examples, written out beside their generated modules."""
from mup_derive.kit import EXAMPLES, kit_files
from tests.helpers import ROOT, cli, fails_cleanly


def test_the_checkout_examples_are_the_shipped_ones():
    assert (ROOT / "examples").resolve() == EXAMPLES.resolve()
    assert {p.name for p in EXAMPLES.iterdir()} >= {"gqa_transformer.toml", "mlp_target.py", "hf_granite_target.py"}


def test_the_kit_is_laid_out_as_a_checkout_and_generates_the_checked_in_bytes(tmp_path):
    res = cli("examples", tmp_path / "kit")
    assert res.exit_code == 0, res.output
    for name in ("gqa_transformer", "mlp", "hf_granite"):
        assert (tmp_path / "kit" / "generated" / f"{name}.py").read_bytes() == \
            (ROOT / "generated" / f"{name}.py").read_bytes()
    assert set(kit_files()) == {str(p.relative_to(tmp_path / "kit")) for p in (tmp_path / "kit").rglob("*")
                                if p.is_file()}


def test_a_target_in_the_kit_finds_its_rules(tmp_path):
    cli("examples", tmp_path)
    res = cli("coord-check", f"{tmp_path / 'examples' / 'mlp_target.py'}:target", "--axes", "width", "--widths",
              "32,64", "--steps", "1", "--parametrization", "mup", "--out", tmp_path / "out")
    assert res.exit_code in (0, 3), res.output
    assert str(tmp_path / "generated" / "mlp.py") in (tmp_path / "out" / "coord_check_mlp_mup.json").read_text()


def test_the_kit_is_never_written_over_a_file(tmp_path):
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "mlp.toml").write_text("mine")
    assert fails_cleanly(cli("examples", tmp_path), "exists: write the examples into a new folder")
    assert (tmp_path / "examples" / "mlp.toml").read_text() == "mine"
    assert not (tmp_path / "generated").exists()
