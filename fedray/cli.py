"""The ``fedray`` console script: a Hydra app over :func:`fedray.simulate`.

The only module that imports Hydra (with fedray/sweep.py, its multirun callback).
Config groups live in conf/ (shipped inside the package as fedray/conf), typed by the
schemas registered below. It imports neither torch nor Ray until the config has
passed its checks, so a typo costs a fraction of a second.

A multirun (``fedray -m``) runs its jobs one after another in this process: they share
one Ray and its warm workers, a failing run leaves ``error.json`` and the sweep goes
on, and the sweep callback gathers every run into one table and its plots.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fedray.config import (
    SECTIONS,
    ConfigError,
    SimulationConfig,
    config_from_dict,
    first_line,
    hydra_schema,
)
from fedray.data.heart_disease import DatasetUnavailable
from fedray.sweep import record_failure

if TYPE_CHECKING:
    from fedray.simulation import Result


MAX_PRINTED_HOSPITALS = 20


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(name="fedray_schema", node=hydra_schema(SimulationConfig))
    for group, cls in SECTIONS.items():
        # at the root: no `dataset=schema`
        if group not in ("ray", "availability", "faults", "training", "audit"):
            store.store(name=f"schema_{group}", node=hydra_schema(cls))


# how the run drew its noise (privacy.secure_rng)
NOISE_SOURCE = {True: ", noise from ChaCha20 under OS keys", False: ", noise seeded by seed"}


def format_result(result: Result) -> str:
    s = result.summary
    lines = [f"{'hospital':<16}{'train':>7}{'test':>7}{'accuracy':>10}{'auc':>8}"]
    clients = s["clients"]
    if len(clients) > MAX_PRINTED_HOSPITALS:  # the worst and the best, not thousands of lines
        by_accuracy = sorted(clients, key=lambda c: s["per_client_accuracy"][c["name"]])
        half = MAX_PRINTED_HOSPITALS // 2
        clients = [*by_accuracy[:half], None, *by_accuracy[-half:]]
    for client in clients:
        if client is None:
            lines.append(f"{'…':<16}({len(s['clients']) - 2 * half} more hospitals; all of "
                         "them in summary.json and metrics.csv)")
            continue
        name = client["name"]
        auc = s["per_client_auc"].get(name)
        lines.append(
            f"{name:<16}{client['num_train']:>7}{client['num_test']:>7}"
            f"{s['per_client_accuracy'][name]:>10.3f}{'' if auc is None else f'{auc:.3f}':>8}"
        )
    pooled_auc = "" if s["auc"] is None else f"{s['auc']:.3f}"
    n_train = sum(c["num_train"] for c in s["clients"])
    n_test = sum(c["num_test"] for c in s["clients"])
    lines.append(f"{'pooled test':<16}{n_train:>7}{n_test:>7}{s['accuracy']:>10.3f}{pooled_auc:>8}")
    lines.append(f"{'mean of clients':<16}{'':>14}{s['mean_client_accuracy']:>10.3f}")
    lines.append(
        f"{s['rounds_completed']} rounds in {s['wall_seconds']:.1f} s "
        f"(start-up {s['startup_seconds']:.1f} s, {s['seconds_per_round']:.3f} s/round)"
    )
    if s["epsilon"] is not None:
        p = s["privacy"]
        budget = "" if p["epsilon_budget"] is None else f" of budget {p['epsilon_budget']:g}"
        lines.append(
            f"privacy={p['mode']} ({p['accountant']}): ε={s['epsilon']:.3f}{budget} at "
            f"δ={s['delta']:g}, σ≤{s['noise_multiplier']:.3f}, protects {p['protects']} "
            f"({p['adjacency'].replace('_', '-')} adjacency"
            f"{NOISE_SOURCE[p['secure_rng']]})"
        )
        for item in p["budget_exhausted"]:
            lines.append(f"  {item['client']} stopped at round {item['round']}: budget spent")
        if p["stopped_early"]:
            lines.append(f"  {p['stopped_early']}")
        mechanism = p.get("mechanism") or {}
        if mechanism.get("noise") == "skellam" and mechanism.get("wrap_rate") is not None:
            lines.append(f"  integers modulo 2^{mechanism['bits']}: {mechanism['wrapped_total']} "
                         f"coordinates wrapped over {len(mechanism['wrapped_rounds'])} rounds "
                         f"(rate {mechanism['wrap_rate']:.2g}; "
                         f"{mechanism['wrap_probability_per_coordinate']:g} planned)")
        if p.get("noise_scale_for_audit_control", 1.0) < 1:
            lines.append(f"  audit control: only {p['noise_scale_for_audit_control']:g} of the "
                         "noise was added; the ε above is NOT enforced")
    encryption = s["encryption"]
    if encryption["name"] != "none" and encryption["bytes_per_parameter"] is not None:
        lines.append(f"encryption={encryption['name']} ({encryption['preset']}): "
                     f"{encryption['bytes_per_parameter']:.1f} bytes/parameter uploaded")
    lines.extend(_audit_lines(s.get("audit")))
    if result.output_dir is not None:
        lines.append(f"outputs: {result.output_dir}")
    return "\n".join(lines)


def _audit_lines(audit: dict | None) -> list[str]:
    """audit.*: one line per attack (the whole record is in summary.json → audit)."""
    if not audit:
        return []
    lines = [f"audit (target {audit['target_hospital']}):"]
    if "inversion" in audit:
        inv = audit["inversion"]
        found = ("" if inv.get("best_relative_error") is None else
                 f", best candidate {inv['best_relative_error']:.3g} relative error, "
                 f"{inv['records_recovered']} record"
                 f"{'' if inv['records_recovered'] == 1 else 's'} recovered")
        if inv.get("dlg") and inv["dlg"]["best_relative_error"] is not None:
            found += f"; optimisation-based: {inv['dlg']['best_relative_error']:.3g}"
        released = inv.get("released_sum")
        if released and released.get("best_relative_error") is not None:
            found += (f"; from the released sum: {released['records_recovered']} recovered "
                      f"(best {released['best_relative_error']:.3g})")
        lines.append(f"  inversion: the aggregator saw {inv['view']}{found}")
    if "membership" in audit:
        m = audit["membership"]
        lines.append(f"  membership: AUC {m['loss']['auc']:.3f} (loss), "
                     f"{m['calibrated']['auc']:.3f} (calibrated), advantage "
                     f"{m['calibrated']['advantage']:.3f}")
    if "canary" in audit:
        c = audit["canary"]
        claimed = ("no ε claimed" if c["epsilon_accountant"] is None
                   else f"accountant's ε {c['epsilon_accountant']:.3f}")
        lines.append(f"  canaries: {c['canaries']} inserted (each with probability 1/2), "
                     f"{c['correct']}/{c['guesses']} guesses right, empirical ε "
                     f"≥ {c['epsilon_lower_bound']:.3f} at {c['confidence']:.0%} ({claimed}); "
                     f"the most these canaries could show: ε {c['epsilon_ceiling']:.2f}, so "
                     f"{c['verdict']}")
    if "client_canary" in audit:
        lines.extend(_client_canary_lines(audit["client_canary"], "canary clients"))
    if "gradient_canary" in audit:
        lines.extend(_client_canary_lines(audit["gradient_canary"], "gradient canaries"))
    return lines


def _client_canary_lines(c: dict, name: str) -> list[str]:
    """audit.client_canary, audit.gradient_canary (``name``): the deciding view's
    estimate, its lower bound and verdict, and the one-run bound with its ceiling."""
    claimed = ("no ε claimed" if c["epsilon_accountant"] is None
               else f"accountant's ε {c['epsilon_accountant']:.3f}")
    view = c[c["deciding_view"]]
    fit, one_run = view["gaussian_fit"], view["one_run"]
    return [
        f"  {name}: {c['canaries']} ({c['included']} in), scored on "
        f"{c['deciding_view']} over {c['rounds_seen']} rounds: empirical ε "
        f"{fit['epsilon']:.3f} (≥ {fit['epsilon_lower']:.3f} at {c['confidence']:.0%}, "
        f"Gaussian fit) against the {claimed}: {fit['verdict']}",
        f"    one-run bound ε ≥ {one_run['epsilon_lower_bound']:.3f} "
        f"({one_run['correct']}/{one_run['guesses']} guesses right; the most it could show: "
        f"{one_run['epsilon_ceiling']:.2f}): {one_run['verdict']}",
    ]


def compose(overrides: list[str]) -> SimulationConfig:
    """The config the CLI would build for these overrides, checked the way the CLI checks
    it (for scripts and tests; no run directory)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(config_module="fedray.conf", version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    return checked_config(OmegaConf.to_container(cfg, resolve=True), None)  # type: ignore[arg-type]


def checked_config(values: dict[str, Any], run_dir: str | None) -> SimulationConfig:
    """The typed config for a composed one; ConfigError names the key and what is allowed."""
    if values.get("output_dir") is not None:
        raise ConfigError("output_dir", values["output_dir"],
                          "the CLI writes to Hydra's run directory; set hydra.run.dir=… "
                          "(hydra.sweep.dir=… with -m) instead")
    return config_from_dict({**values, "output_dir": run_dir})


def run(cfg: DictConfig) -> float:
    values: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    hydra_config = HydraConfig.get()
    run_dir = hydra_config.runtime.output_dir
    multirun = hydra_config.mode == RunMode.MULTIRUN
    try:
        config = checked_config(values, run_dir)
        from fedray.runtime.session import keep_ray_between_runs
        from fedray.simulation import simulate  # torch and Ray: only for a valid config

        if multirun:
            keep_ray_between_runs()
        result = simulate(config)
    except (ConfigError, DatasetUnavailable) as err:
        print(f"fedray: error: {err}", file=sys.stderr, flush=True)
        if not multirun:
            sys.exit(2)
        record_failure(run_dir, values, err)
        return float("nan")
    except Exception as err:  # a run that crashed: the sweep records it and goes on
        if not multirun:
            raise
        print(f"fedray: run {hydra_config.job.num} failed: {type(err).__name__}: {err}",
              file=sys.stderr, flush=True)
        record_failure(run_dir, values, err)
        return float("nan")
    print(format_result(result), flush=True)
    return result.accuracy


def composition_error_line(err: Exception) -> str:
    """Hydra's multi-line composition errors as one line that names the key, the value
    and what is allowed."""
    from hydra.errors import MissingConfigException

    cause = err.__cause__
    if isinstance(err, MissingConfigException):
        lines = str(err).splitlines()
        wanted = lines[0].rsplit("Could not find ", 1)[-1].strip("'")
        group, _, option = wanted.rpartition("/")
        options = [line.strip() for line in lines if line.startswith("\t")
                   and "provider=" not in line]
        allowed = f"must be one of {', '.join(options)}" if options else "no such config"
        return f"{group}={option!r}: {allowed}" if group else f"{wanted}: {allowed}"
    key = getattr(cause, "full_key", None)
    first = first_line(cause or err, default=type(err).__name__)
    if key and "not in" in first:
        return f"{key}: no such key (a typo? `fedray --help` lists the config)"
    if key:
        return f"{key}: {first}"
    return first_line(err)


def precheck(arguments: list[str]) -> None:
    """A single run's overrides composed and checked before Hydra starts the run, so a
    wrong type, key or option is one line and exit 2 (Hydra would print several).
    Multiruns and Hydra's own flags go straight to Hydra."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if any(a.startswith("-") or (a.startswith("hydra.") and not a.startswith("hydra.run.dir="))
           for a in arguments):
        return  # Hydra's flags and settings (search path, mode…): Hydra's own checks
    resumed = [a for a in arguments if a.startswith("resume=")]
    others = [a for a in arguments if not a.startswith(("resume=", "ray.", "progress=",
                                                        "hydra."))]
    if resumed and others:
        _refuse(f"{resumed[0]}: a resumed run keeps its own config; give only ray.* and "
                f"progress with it, not {' '.join(others)}")
    try:
        compose([a for a in arguments if not a.startswith("hydra.")])
    except ConfigError as err:
        _refuse(str(err))
    except (HydraException, OmegaConfBaseException) as err:
        _refuse(composition_error_line(err))
    for argument in arguments:  # Hydra makes it next; a failure there is a traceback
        if argument.startswith("hydra.run.dir="):
            _make_run_dir("hydra.run.dir", argument.split("=", 1)[1])


def _make_run_dir(key: str, directory: str) -> None:
    if "${" in directory:
        return  # an interpolation (e.g. ${now:…}): only Hydra can resolve it
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _refuse(f"{key}={directory!r}: cannot be created ({err.strerror}); choose a folder "
                "you can write to")


def _refuse(line: str) -> None:
    print(f"fedray: error: {line}", file=sys.stderr, flush=True)
    sys.exit(2)


register_schemas()
hydra_main = hydra.main(version_base="1.3", config_path="conf", config_name="config")(run)


def main() -> None:
    precheck(sys.argv[1:])
    hydra_main()

if __name__ == "__main__":
    main()
