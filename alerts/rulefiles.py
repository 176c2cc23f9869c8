"""Loading rule files (YAML) and explaining their mistakes with line numbers."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pydantic
import yaml
from pydantic import TypeAdapter

from alerts.ruleset import AnyRule, Rule, RuleFile
from mimamori.errors import ValidationError
from mimamori.settings import Settings


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One mistake in a rule file: where (line, dotted path) and what."""

    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RuleFileError(ValidationError):
    def __init__(self, source: str, problems: list[RuleProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(p) for p in problems))


def _line_map(node: yaml.Node, path: tuple[object, ...] = ()) -> dict[tuple[object, ...], int]:
    """Every key/index path of a YAML document mapped to its 1-based line."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line + 1
            for sub, line in _line_map(value, child).items():
                lines.setdefault(sub, line)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_map(item, (*path, index)))
    return lines


_KINDS = frozenset({"threshold", "rate", "accumulation", "duration", "composite", "silence"})


def _locate(lines: dict[tuple[object, ...], int], loc: tuple[object, ...]) -> tuple[int | None, str]:
    clean = list(loc)
    # pydantic names the union member ("rules", 0, "threshold", "metric"); the file has no such key.
    if len(clean) >= 3 and isinstance(clean[1], int) and clean[2] in _KINDS:
        del clean[2]
    for cut in range(len(clean), -1, -1):
        line = lines.get(tuple(clean[:cut]))
        if line is not None:
            return line, ".".join(str(p) for p in clean)
    return None, ".".join(str(p) for p in clean)


def parse_rules(text: str, source: str = "<rules>") -> list[AnyRule]:
    """The rules of one YAML document (``rules: [...]``), or RuleFileError listing every problem with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise RuleFileError(source, [RuleProblem(line, "", f"not valid YAML: {exc.problem}")]) from None
    if node is None or doc is None:
        return []
    lines = _line_map(node)
    try:
        parsed = RuleFile.model_validate(doc)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            line, path = _locate(lines, tuple(err["loc"]))
            problems.append(RuleProblem(line, path, err["msg"]))
        raise RuleFileError(source, problems) from None
    return list(parsed.rules)


def parse_rule(data: object) -> AnyRule:
    """One rule from a JSON-like value (the API's body)."""
    try:
        return TypeAdapter(Rule).validate_python(data)  # type: ignore[no-any-return]
    except pydantic.ValidationError as exc:
        problems = [RuleProblem(None, ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        raise RuleFileError("rule", problems) from None


def load_rule_file(path: Path) -> list[AnyRule]:
    return parse_rules(path.read_text("utf-8"), str(path))


def default_rules_dir() -> Path:
    return Path(str(resources.files("alerts").joinpath("rules")))


def load_rule_dir(directory: Path) -> list[AnyRule]:
    """Every ``*.yaml`` file of a folder, in name order; a rule id may be defined once across them."""
    rules: list[AnyRule] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        for rule in load_rule_file(path):
            if rule.id in seen:
                raise RuleFileError(str(path), [RuleProblem(None, rule.id, f"rule id also defined in {seen[rule.id]}")])
            seen[rule.id] = path
            rules.append(rule)
    return rules


def rules_fingerprint(directory: Path) -> tuple[tuple[str, float, int], ...]:
    """Names, modification times and sizes of the rule files: a change means reload."""
    return tuple(sorted((p.name, p.stat().st_mtime, p.stat().st_size) for p in directory.glob("*.yaml")))


def rules_directory(settings: Settings) -> Path:
    """The rule folder in force: MIMAMORI_ALERTS_RULES_DIR, or the shipped defaults."""
    return Path(settings.alerts_rules_dir) if settings.alerts_rules_dir else default_rules_dir()
