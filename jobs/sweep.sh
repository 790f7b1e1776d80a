#!/bin/bash
# sweep.sh: runs one dmnsp config over a grid of settings.
#
#   jobs/sweep.sh CONFIG --grid KEY=V1,V2[,...] [--grid ...] [OPTIONS] [-- PETSC_OPTION...]
#
# Every combination of the grid values is one point. Point names join
# KEY-VALUE pairs with '_' in --grid order (top_select-1_lambda_scale-10),
# and each point writes to ROOT/NAME (output_dir). A point whose
# metrics.json ends with a summary line is skipped; an interrupted one is
# continued, because every point runs with resume=auto.
#
# Options:
#   --grid KEY=V1,V2   values of one config key (dotted for nested keys)
#   --set KEY=VALUE    an override shared by every point (dataset_root=/data)
#   --root DIR         sweep folder (default: sweeps/<config name>)
#   --np N             MPI ranks per point for local runs (default 1: no mpirun)
#   --mpirun "CMD"     MPI launcher for local runs (default: mpirun); split on spaces
#   --dmnsp PATH       dmnsp executable (default: $DMNSP, else build/dmnsp of this tree)
#   --dry-run          list the points and check each with `dmnsp config`
#   --slurm [FILE]     write a Slurm job-array script (one array index per
#                      point) to FILE (default ROOT/sweep.sbatch) instead of
#                      running; the job shape comes from NODES, RANKS_PER_NODE,
#                      THREADS_PER_RANK, TIME and MEM (defaults 1, 4, 8, 12:00:00, 40G)
#   --analyze          after local runs, run `dmnsp analyze ROOT` (all points,
#                      tables and plots in ROOT/analysis)
#
# Points run one after another. Exit status: 0 when every point is valid
# (dry run), written (--slurm) or finished (local runs), 1 otherwise, 2 for
# usage errors.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_root=$(cd "$here/.." && pwd)

usage() { # usage STATUS: the header comment, to stdout for --help (0), else to stderr
    local text
    text=$(sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//')
    if [[ $1 -eq 0 ]]; then
        echo "$text"
    else
        echo "$text" >&2
    fi
    exit "$1"
}

fail_usage() {
    echo "sweep: $*" >&2
    echo "run '$0 --help' for the options" >&2
    exit 2
}

# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------
[[ $# -ge 1 ]] || usage 2
[[ $1 == --help || $1 == -h ]] && usage 0
config=$1
shift
[[ -f $config ]] || fail_usage "config $config not found"

grid_keys=()
grid_values=()
shared=()
petsc=()
root=""
ranks=1
mpirun_command="mpirun"
dmnsp=${DMNSP:-$source_root/build/dmnsp}
mode=run
slurm_file=""
analyze=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --grid)
        [[ $# -ge 2 && $2 == *=* ]] || fail_usage "--grid needs KEY=V1,V2,..."
        key=${2%%=*}
        values=${2#*=}
        [[ -n $key && -n $values ]] || fail_usage "--grid $2: empty key or values"
        grid_keys+=("$key")
        grid_values+=("$values")
        shift 2
        ;;
    --set)
        [[ $# -ge 2 && $2 == *=* ]] || fail_usage "--set needs KEY=VALUE"
        shared+=("$2")
        shift 2
        ;;
    --root)
        [[ $# -ge 2 ]] || fail_usage "--root needs a folder"
        root=$2
        shift 2
        ;;
    --np)
        [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || fail_usage "--np needs a positive rank count"
        ranks=$2
        shift 2
        ;;
    --mpirun)
        [[ $# -ge 2 ]] || fail_usage "--mpirun needs a command"
        mpirun_command=$2
        shift 2
        ;;
    --dmnsp)
        [[ $# -ge 2 ]] || fail_usage "--dmnsp needs a path"
        dmnsp=$2
        shift 2
        ;;
    --dry-run)
        mode=dry-run
        shift
        ;;
    --slurm)
        mode=slurm
        if [[ $# -ge 2 && $2 != -* ]]; then
            slurm_file=$2
            shift
        fi
        shift
        ;;
    --analyze)
        analyze=1
        shift
        ;;
    --help | -h)
        usage 0
        ;;
    --)
        shift
        petsc=("$@")
        break
        ;;
    *)
        fail_usage "unknown argument '$1'"
        ;;
    esac
done
[[ ${#grid_keys[@]} -gt 0 ]] || fail_usage "no --grid given"
[[ -x $dmnsp ]] || fail_usage "dmnsp executable $dmnsp not found (build it or pass --dmnsp)"
if [[ -z $root ]]; then
    root=sweeps/$(basename "$config" .yaml)
fi

# ---------------------------------------------------------------------------
# Points: the cartesian product of the grid, first key varying slowest.
# Each point is a name and its overrides joined by the unit separator.
# ---------------------------------------------------------------------------
separator=$'\x1f'
point_names=("")
point_overrides=("")
for i in "${!grid_keys[@]}"; do
    key=${grid_keys[$i]}
    IFS=, read -r -a values <<<"${grid_values[$i]}"
    names=()
    overrides=()
    for p in "${!point_names[@]}"; do
        for value in "${values[@]}"; do
            [[ -n $value ]] || fail_usage "--grid $key: empty value in '${grid_values[$i]}'"
            # Folder names: '/' and spaces in values become '_'.
            safe=${value//\//_}
            safe=${safe// /_}
            prefix=${point_names[$p]}
            names+=("${prefix:+${prefix}_}$key-$safe")
            previous=${point_overrides[$p]}
            overrides+=("${previous:+$previous$separator}$key=$value")
        done
    done
    point_names=("${names[@]}")
    point_overrides=("${overrides[@]}")
done
count=${#point_names[@]}

# point_arguments I: the overrides of point I (grid, shared, output_dir,
# resume=auto) into the array "arguments".
point_arguments() {
    local i=$1
    local -a grid=()
    IFS=$separator read -r -a grid <<<"${point_overrides[$i]}"
    arguments=("${grid[@]}" "${shared[@]}" "output_dir=$root/${point_names[$i]}" "resume=auto")
}

is_finished() {
    grep -qs '"summary": *true' "$root/$1/metrics.json"
}

# Validate every point first: a typo in a key fails before anything runs.
invalid=0
for i in "${!point_names[@]}"; do
    point_arguments "$i"
    if ! message=$("$dmnsp" config "$config" "${arguments[@]}" 2>&1 >/dev/null); then
        echo "sweep: point ${point_names[$i]} is invalid: ${message#dmnsp: error: }" >&2
        invalid=$((invalid + 1))
    fi
done

if [[ $mode == dry-run ]]; then
    echo "sweep: $count points of $config under $root"
    for i in "${!point_names[@]}"; do
        point_arguments "$i"
        state=new
        if is_finished "${point_names[$i]}"; then
            state=finished
        elif [[ -e $root/${point_names[$i]}/checkpoint.h5 || -e $root/${point_names[$i]}/metrics.json ]]; then
            state=resume
        fi
        printf '%3d  %-8s %s  %s\n' "$i" "$state" "${point_names[$i]}" "${arguments[*]}"
    done
    [[ $invalid -eq 0 ]] || { echo "sweep: $invalid invalid point(s)" >&2; exit 1; }
    exit 0
fi
[[ $invalid -eq 0 ]] || { echo "sweep: $invalid invalid point(s); nothing was run" >&2; exit 1; }
mkdir -p "$root"

# ---------------------------------------------------------------------------
# Slurm job array: index i runs point i.
# ---------------------------------------------------------------------------
if [[ $mode == slurm ]]; then
    [[ -n $slurm_file ]] || slurm_file=$root/sweep.sbatch
    config_path=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
    root_path=$(cd "$root" && pwd)
    {
        echo "#!/bin/bash"
        echo "# dmnsp sweep over $config_path: $count points, one per array index."
        echo "# Written by jobs/sweep.sh; submit with: sbatch $slurm_file"
        echo "#SBATCH --job-name=dmnsp-sweep"
        echo "#SBATCH --array=0-$((count - 1))"
        echo "#SBATCH --nodes=${NODES:-1}"
        echo "#SBATCH --ntasks-per-node=${RANKS_PER_NODE:-4}"
        echo "#SBATCH --cpus-per-task=${THREADS_PER_RANK:-8}"
        echo "#SBATCH --mem=${MEM:-40G}"
        echo "#SBATCH --time=${TIME:-12:00:00}"
        echo "#SBATCH --output=$root_path/slurm-%A_%a.out"
        echo "# SIGUSR1 5 minutes before the time limit: dmnsp saves a progress checkpoint."
        echo "#SBATCH --signal=USR1@300"
        echo "set -euo pipefail"
        printf 'dmnsp=%q\nconfig=%q\nroot=%q\n' "$(cd "$(dirname "$dmnsp")" && pwd)/$(basename "$dmnsp")" \
            "$config_path" "$root_path"
        echo "names=("
        for i in "${!point_names[@]}"; do
            printf '    %q\n' "${point_names[$i]}"
        done
        echo ")"
        echo "overrides=("
        for i in "${!point_names[@]}"; do
            point_arguments "$i"
            arguments[${#arguments[@]} - 2]="output_dir=$root_path/${point_names[$i]}"
            printf '    %q\n' "$(printf '%s\n' "${arguments[@]}")"
        done
        echo ")"
        printf 'petsc=('
        if ((${#petsc[@]} > 0)); then
            printf ' %q' "${petsc[@]}"
        fi
        printf ' )\n'
        cat <<'BODY'
name=${names[$SLURM_ARRAY_TASK_ID]}
mapfile -t arguments <<<"${overrides[$SLURM_ARRAY_TASK_ID]}"
if grep -qs '"summary": *true' "$root/$name/metrics.json"; then
    echo "sweep: $name is finished; nothing to do"
    exit 0
fi
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1} OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export OMP_PLACES=cores OMP_PROC_BIND=close OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
echo "sweep: point $SLURM_ARRAY_TASK_ID ($name): ${arguments[*]}"
srun --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" --cpu-bind=cores \
    "$dmnsp" train "$config" "${arguments[@]}" "${petsc[@]}"
BODY
    } >"$slurm_file"
    chmod +x "$slurm_file"
    echo "sweep: wrote $slurm_file ($count array tasks); submit with: sbatch $slurm_file"
    echo "sweep: afterwards: $dmnsp analyze $root   (tables and plots in $root/analysis)"
    exit 0
fi

# ---------------------------------------------------------------------------
# Local runs, one point after another.
# ---------------------------------------------------------------------------
read -r -a launcher <<<"$mpirun_command"
failed=()
for i in "${!point_names[@]}"; do
    name=${point_names[$i]}
    if is_finished "$name"; then
        echo "sweep: [$((i + 1))/$count] $name is finished; skipped"
        continue
    fi
    point_arguments "$i"
    echo "sweep: [$((i + 1))/$count] $name: ${arguments[*]}"
    command=("$dmnsp" train "$config" "${arguments[@]}" "${petsc[@]}")
    if [[ $ranks -gt 1 ]]; then
        command=("${launcher[@]}" -np "$ranks" "${command[@]}")
    fi
    if ! "${command[@]}"; then
        echo "sweep: $name failed; its folder keeps what was written, and running the sweep again resumes it" >&2
        failed+=("$name")
    fi
done

if [[ $analyze -eq 1 ]]; then
    # A sweep folder stands for its point folders, whose results go to ROOT/analysis.
    "$dmnsp" analyze "$root" || failed+=("analysis")
fi

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "sweep: ${#failed[@]} failed: ${failed[*]}" >&2
    exit 1
fi
echo "sweep: all $count points finished under $root"
