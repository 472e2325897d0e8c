"""The command line: bad input gets a one-line error and a non-zero exit; reports record their command."""
import json
import math

import pytest
import torch

from tests.helpers import GENERATED, GQA, ROOT, ZOO, cli, fails_cleanly, quiet


def test_declaration_error_names_op_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[op]]\nname = "k"\nrole = "hidden"\nfan_in = "n"\nfan_out = "n"\nrank = "n * r"\n')
    res = cli("derive", bad)
    assert res.exit_code != 0
    assert "op 'k'" in res.output and "field 'rank'" in res.output


@pytest.mark.parametrize("content,msg", [
    (b"\xff\xfe bad", "not UTF-8"), (b'name = "a"\n[[op]]\nname = "w"\nrole = "hidden"\nfan_in = "n"\n'
                                    b'fan_out = "__import__(\'os\')"\n', "not allowed"),
    (b'colour = 1\n', "unknown top-level key"), (b'dims = 3\n', "use a [dims] table")])
def test_bad_files(tmp_path, content, msg):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(content)
    assert fails_cleanly(cli("derive", bad), msg)


def test_alpha_must_be_a_number():
    res = cli("derive", GQA, "--alpha", "abc")
    assert fails_cleanly(res, "--alpha") and "expected a number" in res.output


def test_alpha_out_of_range():
    assert fails_cleanly(cli("derive", GQA, "--alpha", "2"), "alpha must lie in")


def test_output_into_missing_folders(tmp_path):
    deep = tmp_path / "a" / "b" / "table.md"
    assert cli("derive", GQA, "-o", deep).exit_code == 0 and deep.read_text().startswith("# gqa")


def test_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    assert fails_cleanly(cli("derive", GQA, "-o", tmp_path / "file" / "t.md"), "cannot write")


def test_base_width_zero_is_refused(tmp_path):
    assert fails_cleanly(cli("generate", GQA, "-o", tmp_path / "g.py", "--base-width", "0"), "--base-width")


def test_base_shape_of_fractional_dims_is_refused_before_writing(tmp_path):
    res = cli("generate", GQA, "-o", tmp_path / "g.py", "--base-width", "100")
    assert fails_cleanly(res, "not a whole positive dimension")
    assert not (tmp_path / "g.py").exists() and not list(tmp_path.glob(".*"))


def test_base_of_an_undeclared_symbol_is_refused(tmp_path):
    res = cli("generate", ZOO, "-o", tmp_path / "zoo.py", "--base", "Q=8")
    assert fails_cleanly(res, "--base") and "Q" in res.output


@pytest.mark.parametrize("eps,exponent", [("constant", "0"), ("derived", "-1")])
def test_eps_convention(eps, exponent):
    data = json.loads(cli("derive", GQA, "--format", "json", "--eps", eps).output)
    assert data["eps"] == eps and data["ops"]["o"]["eps"]["adam"]["exponents"]["n"] == exponent


@pytest.mark.parametrize("args,message", [
    (["--wd-penalty", "0"], "--wd-penalty"),
    (["--control", "wd-unscaled", "--parametrization", "sp"], "broken muP variant")])
def test_sweep_errors(args, message):
    assert fails_cleanly(cli("sweep", GENERATED, "--values", "64", "--steps", "1", *args), message)


@pytest.mark.parametrize("args,message", [
    (["--widths", "64"], "at least two distinct"), (["--widths", "0,64"], "not a positive"),
    (["--widths", ",,"], "at least one value"), (["--steps", "0"], "--steps"), (["--seeds", "1"], "--seeds"),
    (["--lr", "nan"], "not a positive finite"), (["--lr", "-1"], "not a positive finite"),
    (["--out", "README.md"], "not a directory"), (["--axes", "height"], "--axes"),
    (["--control", "kv-lr-r", "--parametrization", "sp"], "--control"), (["--control", "wd-unscaled"], "--control")])
def test_coord_check_errors(args, message):
    assert fails_cleanly(cli("coord-check", GENERATED, *args), message)


@pytest.mark.parametrize("target,message", [
    ("generated/mlp.py", "not a generated module with a GQA model"), ("nope.py", "no file"),
    ("examples/mlp_target.py:nothing", "defines no function"), ("examples/mlp_target.py:RULES", "no function")])
def test_bad_targets(target, message):
    assert fails_cleanly(cli("coord-check", ROOT / target, "--widths", "64,128"), message)


def test_cuda_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert fails_cleanly(cli("sweep", GENERATED, "--device", "cuda"), "CUDA is not available")


def test_ray_runner_without_ray():
    try:
        import ray  # noqa: F401
        pytest.skip("Ray is installed")
    except ImportError:
        pass
    res = cli("sweep", GENERATED, "--runner", "ray", "--values", "64", "--steps", "1")
    assert fails_cleanly(res, "pip install 'mup-derive[ray]'")


def test_coord_check_of_sp_reports_failure_and_exits_zero(tmp_path):
    res = cli("coord-check", GENERATED, "--widths", "64,128", "--axes", "width", "--steps", "2", "--seeds", "2",
              "--parametrization", "sp", "--out", tmp_path)
    assert res.exit_code == 0, res.output          # SP failing the check is expected, not an error
    assert "[sp] coordinate check FAILED" in res.output
    rep = json.loads((tmp_path / "coord_check_gqa_transformer_sp.json").read_text())
    assert rep["command"].startswith("mup-derive coord-check ") and "--widths 64,128" in rep["command"]


def test_sweep_on_text(tmp_path):
    res = cli("sweep", GENERATED, "--axis", "width", "--values", "64", "--lrs", "1e-3,4e-3", "--steps", "3",
              "--batch", "2", "--seq", "16", "--text", ROOT / "README.md", "--out", tmp_path, "--name", "text")
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "text.json").read_text())
    assert "--text" in rep["command"] and all(math.isfinite(x) for x in rep["runs"][0]["losses"])


def test_coord_check_reruns_a_text_seed_set_from_the_command_line(tmp_path):
    from mup_derive.validate import CheckSettings, resolve, run_coord_check
    args = ["--widths", "64,128", "--axes", "width", "--steps", "1", "--seeds", "2", "--max-seeds", "2",
            "--parametrization", "mup", "--seed-offset", "100"]
    res = cli("coord-check", GENERATED, *args, "--text", ROOT / "README.md", "--out", tmp_path)
    assert res.exit_code in (0, 3), res.output
    rep = json.loads((tmp_path / "coord_check_gqa_transformer_mup.json").read_text())
    assert "--text" in rep["command"]
    s = CheckSettings(widths=(64, 128), steps=1, seeds=2, max_seeds=2, seed_offset=100)
    runs = {text: run_coord_check(resolve(str(GENERATED), "mup", text=text, batch=s.batch, seq=s.seq), ["width"], s,
                                  echo=quiet) for text in (str(ROOT / "README.md"), None)}
    measured = [r.axes["width"].labels["residual"].metrics["rms"].seed_values for r in runs.values()]
    assert rep["axes"]["width"]["labels"]["residual"]["metrics"]["rms"]["seed_values"] == measured[0] != measured[1]


@pytest.mark.parametrize("command", ["derive", "generate"])
def test_output_that_is_the_input_is_refused(tmp_path, command):
    decl = tmp_path / "gqa.toml"
    decl.write_bytes(GQA.read_bytes())
    assert fails_cleanly(cli(command, decl, "-o", decl), "is an input")
    assert decl.read_bytes() == GQA.read_bytes()


@pytest.mark.parametrize("alpha", ["1e100000000", "1" * 40, "nan", "1/0"])
def test_alpha_that_would_hang_or_mean_nothing_is_refused(alpha):
    assert fails_cleanly(cli("derive", GQA, "--alpha", alpha), "expected a number")


@pytest.mark.parametrize("args,message", [
    (["--device", "meta"], "cannot train"), (["--widths", "100,200"], "cannot be built at shape"),
    (["--widths", "64,100000"], "above the largest allowed"), (["--steps", "10000000"], "--steps"),
    (["--out", "/dev/null/x"], "--out")])
def test_coord_check_refuses_before_training(args, message):
    assert fails_cleanly(cli("coord-check", GENERATED, "--axes", "width", *args), message)


def test_a_toml_target_is_named(tmp_path):
    assert fails_cleanly(cli("coord-check", GQA, "--out", tmp_path), "cannot be imported as Python")


def test_an_option_the_factory_ignores_is_refused(tmp_path):
    res = cli("sweep", f"{ROOT / 'examples' / 'mlp_target.py'}:target", "--text", ROOT / "README.md", "--out", tmp_path)
    assert fails_cleanly(res, "takes no 'text' option")


def test_sweep_report_never_lands_on_its_text_input(tmp_path):
    text = tmp_path / "corpus.csv"
    text.write_bytes((ROOT / "README.md").read_bytes())
    res = cli("sweep", GENERATED, "--values", "64", "--lrs", "1e-3", "--steps", "1", "--text", text,
              "--out", tmp_path, "--name", "corpus")
    assert fails_cleanly(res, "is an input")
    assert text.read_bytes() == (ROOT / "README.md").read_bytes()


def test_tied_is_a_family_option():
    """--tied reaches a family target (its tied variant) and is refused, in one line, by a target that cannot tie:
    a generated module, a family whose embedding must carry the stream, a library whose configs tie nothing."""
    pytest.importorskip("transformers")
    from mup_derive.validate.target import resolve
    assert resolve("hf:llama", tied=True).name == "hf_llama_tied"
    assert fails_cleanly(cli("coord-check", GENERATED, "--tied", "--axes", "width"), "drop --tied")
    olmo2 = cli("coord-check", "hf:olmo2", "--tied", "--axes", "width")
    assert fails_cleanly(olmo2, "a tied hf:olmo2 is not supported")
