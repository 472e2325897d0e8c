#!/usr/bin/env bash
# The commands behind every committed report in this folder (CPU, about two and a half hours on 2 cores).
# Each report also records its own command line.
set -euo pipefail
cd "$(dirname "$0")/.."
out=reports
gqa=generated/gqa_transformer.py

# Coordinate checks at the defaults: muP, SP, and the five negative controls.
mup-derive coord-check $gqa --out $out || true           # exits 1 if muP fails; the report says so
for c in hidden-lr-unscaled attn-sqrt-d no-output-mult kv-lr-r no-residual-mult; do
  mup-derive coord-check $gqa --control $c --out $out
done

# LR transfer across width and depth, muP against SP (AdamW, synthetic Markov + copy task).
for p in mup sp; do
  mup-derive sweep $gqa --parametrization $p --axis width --values 64,128,256 --steps 200 --seeds 2 \
    --out $out --name sweep_width_$p
  mup-derive sweep $gqa --parametrization $p --axis depth --values 2,4,8 --width 128 --steps 200 --seeds 2 \
    --out $out --name sweep_depth_$p
done

# Hugging Face GraniteForCausalLM (pip install 'mup-derive[hf]'): coordinate check.
mup-derive coord-check examples/hf_granite_target.py:target --out $out || true

# GQA f(r): the three forms of K/V's Adam LR f(r)/n across r = 1, 2, 4, 8 at width 256, 4 seeds.
mkdir -p out/f
for t in "effective rank-adjusted" "effective spectral" "stored spectral"; do
  set -- $t
  mup-derive generate examples/gqa_transformer.toml -o out/f/gqa_$1_$2.py --update-space $1 --update-target $2
  mup-derive sweep out/f/gqa_$1_$2.py --axis ratio --values 1,2,4,8 --width 256 --depth 2 \
    --lrs 5e-4,1e-3,2e-3,4e-3,8e-3 --steps 200 --seeds 4 --batch 8 --seq 64 --out $out --name sweep_ratio_f_$1_$2
done

# Along r: the repeated map's aligned gain, the check with V's stream gradient cut and with K/V's init x 2/(1+sqrt r),
# the MQA limit, the ratio-axis calibration, and the LR sweep across r with that init (reports/ratio_axis.md).
python reports/ratio_axis.py > $out/ratio_axis.txt
python reports/ratio_axis.py calibrate >> $out/ratio_axis.txt
mup-derive sweep reports/ratio_axis.py:spectral_kv --axis ratio --values 1,2,4,8 --lrs 5e-4,1e-3,2e-3,4e-3,8e-3 \
  --width 256 --depth 2 --ratio 1 --batch 8 --seq 64 --parametrization mup --steps 200 --seeds 4 --out $out \
  --name sweep_ratio_kv_init_spectral

# Weight decay across width: eta*lambda held constant (muP) against the wd-unscaled control.
for c in "" "--control wd-unscaled"; do
  mup-derive sweep $gqa --axis width --values 64,128,256 --lrs 1.5e-3 --wds 0,1,2,4,8,16 --steps 200 --seeds 3 \
    $c --out $out --name sweep_wd_width_mup${c:+_wd-unscaled}
done

# Calibration of the coordinate check (equivalence verdict): muP false fails, control false passes.
mup-derive calibrate --profile cpu --seed-sets 6 --text LICENSE --runner processes --workers 2 --out $out
# The default cell alone with 75 seed sets: enough runs to bound the false-fail rate at 5% (calibration_smoke.*).
mup-derive calibrate --profile smoke --seed-sets 75 --runner processes --workers 2 --out $out
# Two more cells with 73 seed sets each (calibration_cpu_alpha_text_lr.*; the run was stopped during the text cell, so
# it holds the lr and alpha cells), then the text cell alone (calibration_cpu_text.*, with the sixth control).
mup-derive calibrate --profile cpu --seed-sets 73 --text LICENSE --cells alpha,text,lr --runner processes --workers 2 \
  --out $out
mup-derive calibrate --profile cpu --seed-sets 73 --text LICENSE --cells text --runner processes --workers 2 --out $out
# The 10-step cell (stopped after 43 seed sets, about 100 s per seed set on 2 cores, at the old cap of 12 seeds).
mup-derive calibrate --profile cpu --seed-sets 73 --cells steps --runner processes --workers 2 --out $out
# The seed cap raised to 24: the 10-step cell continued to 73 seed sets and the text cell's inconclusive runs rerun
# (--resume keeps every verdict the old cap decided; calibration_cpu_steps.* and calibration_cpu_text.*), then the
# widths 256-1024 cell (calibration_cpu_wide.*).
mkdir -p $out/cap24
mup-derive calibrate --profile cpu --seed-sets 73 --cells steps --resume $out/calibration_cpu_steps.json \
  --runner processes --workers 2 --out $out/cap24
mup-derive calibrate --profile cpu --seed-sets 73 --text LICENSE --cells text --resume $out/calibration_cpu_text.json \
  --runner processes --workers 2 --out $out/cap24
mv $out/cap24/calibration_cpu_* $out/ && rmdir $out/cap24      # the continued reports replace the ones they continue
mup-derive calibrate --profile cpu --seed-sets 73 --cells wide --runner processes --workers 2 --out $out
# (stopped after 53 seed sets, then continued to 73: the continued report replaces the one it continues)
mkdir -p $out/cont
mup-derive calibrate --profile cpu --seed-sets 73 --cells wide --resume $out/calibration_cpu_wide.json \
  --runner processes --workers 2 --out $out/cont
mv $out/cont/calibration_cpu_wide.* $out/ && rmdir $out/cont
# The 10-step cell's five width runs still inconclusive at 24 seeds, rerun with up to 48.
for k in 3 8 9 39 63; do
  mup-derive coord-check $gqa --axes width --steps 10 --parametrization mup --seed-offset ${k}000 --max-seeds 48 \
    --out out/steps_rerun_width_$k
done
# The default and alpha-1/2 cells' inconclusive runs at 12 seeds (their reports predate the verdict rows), up to 24.
mup-derive generate mup_derive/examples/gqa_transformer.toml --alpha 1/2 -o out/gqa_half.py
for k in 7 18 41; do
  mup-derive coord-check $gqa --axes width --parametrization mup --seed-offset ${k}000 --max-seeds 24 \
    --out out/default_rerun_width_$k
  mup-derive coord-check out/gqa_half.py --axes width --parametrization mup --seed-offset ${k}000 --max-seeds 24 \
    --out out/alpha_rerun_width_$k
done
for k in 10 19 35 41; do
  mup-derive coord-check out/gqa_half.py --axes depth --parametrization mup --seed-offset ${k}000 --max-seeds 24 \
    --out out/alpha_rerun_depth_$k
done
# The finite-size effects behind the inconclusive runs (reports/README.md, check_finite_size.*), and the text cell's
# inconclusive axis runs rerun with up to 24 seeds.
python reports/check_finite_size.py > $out/check_finite_size.txt
for k in 2 4 8 10 12 15 18 22 25 40 44 46 47 48 55 56 58 61 66 69 70; do
  mup-derive coord-check $gqa --axes width --parametrization mup --text LICENSE --seed-offset ${k}000 --max-seeds 24 \
    --out out/text_rerun_width_$k
done
for k in 4 41 44 49 52; do
  mup-derive coord-check $gqa --axes depth --parametrization mup --text LICENSE --seed-offset ${k}000 --max-seeds 24 \
    --out out/text_rerun_depth_$k
done

# Stock Hugging Face families under parametrize, and OLMo2's depth study (reports/hf_families.md, olmo2_depth.md).
python reports/hf_families.py llama qwen2 mistral gemma2 phi3 granite > $out/hf_families.txt
python reports/hf_families.py litgpt:gpt torchtitan:llama3 > $out/libraries.txt
python reports/hf_families.py --tied llama qwen2 mistral gemma2 phi3 granite > $out/hf_families_tied.txt
PYTHONPATH=reports python reports/olmo2_depth.py > $out/olmo2_depth.txt   # then the sweep lines: olmo2_depth.md
mup-derive coord-check hf:gemma2 --axes depth --depths 8,16,32 --parametrization mup --out $out
