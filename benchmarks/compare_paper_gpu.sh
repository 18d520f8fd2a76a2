#!/usr/bin/env bash
# `strokezoo compare --size paper` on one large GPU: every trained method in its own process, all at once (each
# keeps the same epochs and wall-clock budget; they share the GPU and the CPU cores), then one pass that adds the
# untrained methods (the clinical rule, the ensemble) and writes OUT/leaderboard.md from the finished methods. The
# processes share OUT: the first step makes the cohort there (or finds it), and each method keeps its own
# OUT/methods/<name>/, so the last pass runs nothing again (compare resumes finished methods).
#
#   bash benchmarks/compare_paper_gpu.sh OUT [COHORT] [EPOCHS] [MINUTES] [TRAINED] [UNTRAINED]
#
# TRAINED and UNTRAINED: comma-separated method names (strokezoo compare --methods). Each process's log goes to
# OUT/logs/<method>.log. A trained method that did not finish is left out of the last pass and named on stderr.
# SIZE=smoke tries the script on a CPU in minutes; CASES=N names a synthetic cohort of N patients (default 12);
# FOLDS=K cross-validates (default 1: one split); DIFFICULTY=D sets the synthetic cohort's difficulty (default 0.5).
set -u
out=${1:?usage: compare_paper_gpu.sh OUT [COHORT] [EPOCHS] [MINUTES] [TRAINED] [UNTRAINED]}
cohort=${2:-isles2018}
epochs=${3:-100}
minutes=${4:-4}
trained=${5:-stroke_ct_boundary_attention_unet2d,stroke_ctp_transformer_unet2d,stroke_ctp_pseudodwi_slnet2d,basicunet,dynunet}
untrained=${6:-threshold_rcbf,ensemble}
flags=(--cohort "$cohort" --size "${SIZE:-paper}" --epochs "$epochs" --minutes "$minutes" --cases "${CASES:-12}" --folds "${FOLDS:-1}" --difficulty "${DIFFICULTY:-0.5}" --out "$out")
mkdir -p "$out/logs"

first=${untrained%%,*}
strokezoo compare "${flags[@]}" --methods "$first" > "$out/logs/$first.log" 2>&1 || echo "$first failed: $out/logs/$first.log" >&2

pids=()
for m in ${trained//,/ }; do
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} strokezoo compare "${flags[@]}" --methods "$m" > "$out/logs/$m.log" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"

finished=()
for m in ${trained//,/ }; do
    if grep -q '"status": "done"' "$out/methods/$m/result.json" 2>/dev/null; then
        finished+=("$m")
    else
        echo "$m did not finish: $out/logs/$m.log" >&2
    fi
done
methods=$(IFS=,; echo "${finished[*]}${finished[*]:+,}$untrained")
strokezoo compare "${flags[@]}" --methods "$methods"
