#!/usr/bin/env bash
# SLURM test (issue 15): a one-node SLURM cluster on this machine, started by hand (no systemd),
# runs the smoke workflow through the shipped profile (workflow/profiles/slurm) exactly as the
# README says; every SLURM job must be COMPLETED and results/tables/uncertainties.csv must equal a
# local run's byte for byte. Every daemon it starts is stopped by its PID on exit.
# Needs root and apt-get (Debian 12: Slurm 22.05), >= 2 CPUs and >= 9 GB RAM (RealMemory = 90 %).
# Usage: tests/slurm/run.sh     (make test-slurm)
# Env: VENV (default .venv), SLURM_TEST_WORK (scratch, default /tmp/systpipe-slurm-test),
#      SLURM_TEST_TREE (the source tree both runs copy, default this checkout), SLURM_TEST_TIMEOUT,
#      SLURM_TEST_REUSE_LOCAL=1 (keep the local run of an earlier call of this script, same tree).
# Writes /etc/slurm/{slurm,slurmdbd}.conf (jobs' srun reads the default path: the plugin drops
# SLURM_* variables) and puts back whatever was there on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$REPO/.venv}
WORK=${SLURM_TEST_WORK:-/tmp/systpipe-slurm-test}
TREE=${SLURM_TEST_TREE:-$REPO}
TIMEOUT=${SLURM_TEST_TIMEOUT:-2400}
PARTITION=systpipe_ci # deliberately not the default partition: the profile must pass it
ACCOUNT=systpipe_ci   # a real association: the plugin validates it with sacctmgr
CLUSTER=systpipeci
t0=$(date +%s)
stamp() { echo "[slurm-test $(($(date +%s) - t0))s] $*"; }
fail() {
    echo "[slurm-test] FAIL: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root (apt-get, daemons); run as root or skip"
command -v apt-get >/dev/null || fail "needs apt-get (Debian/Ubuntu)"
[ -x "$VENV/bin/snakemake" ] || fail "no $VENV/bin/snakemake: run make setup first"
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
# RealMemory a bit under the physical memory, as on a real node (slurmd refuses more than it sees)
REAL_MEM=$((MEM_MB * 90 / 100))
[ "$CPUS" -ge 2 ] || fail "needs >= 2 CPUs (the profile's group jobs ask for 2), found $CPUS"
[ "$REAL_MEM" -ge 8000 ] || fail "needs RealMemory >= 8000 MB (the profile targets 8 GB nodes), found $REAL_MEM"

REUSE_LOCAL=${SLURM_TEST_REUSE_LOCAL:-0}
[ -s "$WORK/local/results/tables/uncertainties.csv" ] || REUSE_LOCAL=0
[ "$REUSE_LOCAL" = 1 ] || rm -rf "$WORK/local"
rm -rf "$WORK"/{etc-saved,state,spool,log,run,slurm,pids}
mkdir -p "$WORK"/{etc-saved,state,spool,log,run}
ETC=/etc/slurm
PIDS=$WORK/pids
: >"$PIDS"
MADE_POLICY=0
teardown() {
    set +e
    [ "$MADE_POLICY" = 1 ] && rm -f /usr/sbin/policy-rc.d
    stamp "teardown"
    command -v scancel >/dev/null && [ -s "$ETC/slurm.conf" ] && scancel --full --quiet --user root 2>/dev/null
    # reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged
    tac "$PIDS" | while read -r name pid; do
        kill -0 "$pid" 2>/dev/null || continue
        kill "$pid"
        for _ in $(seq 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "  stopped $name (pid $pid)"
    done
    # put back the configuration this script replaced (or remove the one it wrote)
    for f in slurm.conf slurmdbd.conf; do
        if [ -e "$WORK/etc-saved/$f" ]; then
            mv -f "$WORK/etc-saved/$f" "$ETC/$f"
        elif [ -e "$WORK/etc-saved/$f.none" ]; then
            rm -f "$ETC/$f"
        fi
    done
}
trap teardown EXIT

# --- packages (the image's services must not start themselves: policy-rc.d 101 during apt) ---
pkgs="slurmd slurmctld slurm-client munge slurmdbd mariadb-server"
installed=$(dpkg-query -W -f='${Status} ${Package}\n' $pkgs 2>/dev/null | grep -c "ok installed" || true)
if [ "$installed" != 6 ]; then
    stamp "apt-get install $pkgs"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        MADE_POLICY=1
    fi
    apt-get update -qq >"$WORK/log/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs \
        >>"$WORK/log/apt.log" 2>&1 || {
        tail -20 "$WORK/log/apt.log"
        fail "apt-get install"
    }
    [ "$MADE_POLICY" = 1 ] && rm -f /usr/sbin/policy-rc.d && MADE_POLICY=0
fi
stamp "slurm $(dpkg-query -W -f='${Version}' slurmd)"
for d in munged mariadbd slurmdbd slurmctld slurmd; do
    pgrep -x "$d" >/dev/null && fail "a $d is already running (not ours): stop it first"
done

# --- munge ---
[ -s /etc/munge/munge.key ] || /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge
runuser -u munge -- /usr/sbin/munged --foreground >"$WORK/log/munged.log" 2>&1 &
echo "munged $!" >>"$PIDS"
for _ in $(seq 40); do munge -n </dev/null >/dev/null 2>&1 && break || sleep 0.25; done
munge -n </dev/null | unmunge >/dev/null || fail "munged does not answer"

# --- accounting: MariaDB + slurmdbd (sacct for the plugin's status checks and this test) ---
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
/usr/sbin/mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
    --pid-file=/run/mysqld/mysqld.pid >"$WORK/log/mariadb.log" 2>&1 &
echo "mariadbd $!" >>"$PIDS"
for _ in $(seq 60); do mariadb -e 'select 1' >/dev/null 2>&1 && break || sleep 0.5; done
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'systpipe-ci';
    DROP DATABASE IF EXISTS systpipe_ci_acct; CREATE DATABASE systpipe_ci_acct;
    GRANT ALL ON systpipe_ci_acct.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" ||
    fail "mariadb setup (log: $WORK/log/mariadb.log)"
chown slurm:slurm "$WORK/state" "$WORK/log" "$WORK/run"
mkdir -p "$ETC"
for f in slurm.conf slurmdbd.conf; do
    if [ -e "$ETC/$f" ]; then cp -p "$ETC/$f" "$WORK/etc-saved/$f"; else : >"$WORK/etc-saved/$f.none"; fi
done
cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$WORK/log/slurmdbd.log
PidFile=$WORK/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=systpipe-ci
StorageLoc=systpipe_ci_acct
EOF
chown slurm:slurm "$ETC/slurmdbd.conf" && chmod 600 "$ETC/slurmdbd.conf"
HOST=$(hostname -s)
# One node with the machine's real CPUs and memory; EnforcePartLimits=ALL rejects at submission
# a job the partition can never run (Slurm's default NO leaves it PENDING for ever).
cat >"$ETC/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=slurm
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/run/slurmctld.pid
SlurmdPidFile=$WORK/run/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
EnforcePartLimits=ALL
SchedulerParameters=sched_interval=5
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
NodeName=$HOST CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=$PARTITION Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
EOF
/usr/sbin/slurmdbd -D >"$WORK/log/slurmdbd.out" 2>&1 &
echo "slurmdbd $!" >>"$PIDS"
for _ in $(seq 60); do sacctmgr -n show cluster >/dev/null 2>&1 && break || sleep 0.5; done
sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null
sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
/usr/sbin/slurmctld -D >"$WORK/log/slurmctld.out" 2>&1 &
echo "slurmctld $!" >>"$PIDS"
for _ in $(seq 60); do scontrol ping 2>/dev/null | grep -q UP && break || sleep 0.5; done
/usr/sbin/slurmd -D >"$WORK/log/slurmd.out" 2>&1 &
echo "slurmd $!" >>"$PIDS"
for _ in $(seq 60); do sinfo -h -N -o %t 2>/dev/null | grep -q idle && break || sleep 0.5; done
sinfo -h -N -o %t | grep -q idle || fail "node not idle: $(sinfo -N -l) (logs: $WORK/log)"
stamp "daemons up: $CPUS CPUs, RealMemory=$REAL_MEM MB, partitions $(sinfo -h -o %P | tr '\n' ' ')"
# EnforcePartLimits=ALL is in force: a request the node cannot hold must fail at once
if sbatch -p "$PARTITION" -A "$ACCOUNT" --cpus-per-task=$((CPUS + 1)) --wrap true >/dev/null 2>&1; then
    fail "sbatch accepted $((CPUS + 1)) CPUs on a $CPUS-CPU node (EnforcePartLimits not in force)"
fi

# --- the two runs, each in its own copy of the tree (the checkout's results/ stay untouched);
# PYTHONPATH makes both runs and every SLURM job import systpipe from that copy ---
copy_tree() {
    mkdir -p "$1"
    tar -C "$TREE" --exclude=./.venv --exclude=./.git --exclude=./.snakemake \
        --exclude='./results/*' --exclude=./bench/out --exclude=__pycache__ -cf - . | tar -C "$1" -xf -
}
export PATH=$VENV/bin:$PATH OMP_NUM_THREADS=1
t_local=reused
if [ "$REUSE_LOCAL" != 1 ]; then
    copy_tree "$WORK/local"
    stamp "local smoke run"
    t_local=$(date +%s)
    (cd "$WORK/local" && PYTHONPATH=$WORK/local/src snakemake --workflow-profile workflow/profiles/default \
        --cores "$CPUS" --configfile config/smoke.yaml) >"$WORK/local.log" 2>&1 || {
        tail -40 "$WORK/local.log"
        fail "local run"
    }
    t_local=$(($(date +%s) - t_local))s
fi

copy_tree "$WORK/slurm"
submitted_after=$(date +%Y-%m-%dT%H:%M:%S)
stamp "SLURM smoke run (partition $PARTITION, account $ACCOUNT; the README's command)"
t_slurm=$(date +%s)
(cd "$WORK/slurm" && export PYTHONPATH=$WORK/slurm/src && SYSTPIPE_SLURM_PARTITION=$PARTITION SYSTPIPE_SLURM_ACCOUNT=$ACCOUNT \
    timeout -k 60 "$TIMEOUT" snakemake --workflow-profile workflow/profiles/slurm \
    --configfile config/smoke.yaml) >"$WORK/log/slurm.log" 2>&1 || {
    tail -60 "$WORK/log/slurm.log"
    squeue -l || true
    fail "SLURM run (log: $WORK/log/slurm.log)"
}
t_slurm=$(($(date +%s) - t_slurm))

# --- checks ---
# allocations only (-X); array tasks are listed one per line as <jobid>_<task>
sacct -X -n -P -S "$submitted_after" --format=JobID,JobName,Partition,Account,State,ReqCPUS,ReqMem,ElapsedRaw \
    >"$WORK/log/sacct.txt"
column -t -s '|' "$WORK/log/sacct.txt"
n_jobs=$(wc -l <"$WORK/log/sacct.txt")
[ "$n_jobs" -gt 0 ] || fail "sacct lists no jobs"
bad=$(awk -F'|' -v p="$PARTITION" -v a="$ACCOUNT" '$5 != "COMPLETED" || $3 != p || $4 != a' "$WORK/log/sacct.txt")
[ -z "$bad" ] || fail "SLURM jobs not COMPLETED in $PARTITION/$ACCOUNT: $bad"
job_seconds=$(awk -F'|' '{s += $8} END {print s}' "$WORK/log/sacct.txt")
grep -q "No SLURM account given" "$WORK/log/slurm.log" && fail "the plugin guessed an account"
for f in results/tables/uncertainties.csv results/tables/uncertainties.parquet; do
    cmp "$WORK/local/$f" "$WORK/slurm/$f" || fail "$f differs between the local and the SLURM run"
done
stamp "OK: $n_jobs SLURM jobs (array tasks counted) all COMPLETED, job time ${job_seconds}s;" \
    "uncertainties.csv identical; local ${t_local}, SLURM ${t_slurm}s"
