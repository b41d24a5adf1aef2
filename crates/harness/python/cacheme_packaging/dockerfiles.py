"""Dockerfiles: parsed with dockerfile-parse (BuildKit heredocs stripped first); every
COPY/ADD source must exist in the context and not be excluded by its .dockerignore; the
build must be multi-stage, end as a non-root user and build with SQLX_OFFLINE=true."""

import glob
import io
import json
import os
import re
import shlex

from .common import fail, read_text

INSTRUCTIONS = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}
# Made by `cargo xtask images` before a build that copies them (crates/Dockerfile's
# `prebuilt` stage): absent from a fresh clone, but they must not be ignored.
GENERATED = ("target/image-bin",)
HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


def strip_heredocs(text):
    """BuildKit heredocs (`COPY <<'EOF' /dst` ... `EOF`): drop the bodies, which
    dockerfile-parse would read as instructions; keep line numbers."""
    out, pending = [], []
    for line in text.split("\n"):
        if pending:
            out.append("")
            body = line.lstrip("\t") if pending[0][0] else line
            if body == pending[0][1]:
                pending.pop(0)
            continue
        out.append(line)
        if not line.lstrip().startswith("#"):
            for m in HEREDOC.finditer(line):
                pending.append((m.group(1) == "-", m.group(3)))
    if pending:
        raise ValueError("unterminated heredoc <<%s" % pending[0][1])
    return "\n".join(out)


def dockerignore_regex(pattern):
    """One .dockerignore pattern (without its `!`) as a regex over context-relative
    paths: `*` and `?` stay within a path segment, `**` crosses them, `**/` may match
    nothing."""
    pat = os.path.normpath(pattern.strip().lstrip("/"))
    rx = ""
    i = 0
    while i < len(pat):
        if pat.startswith("**", i):
            rx += ".*"
            i += 2
            if pat.startswith("/", i):
                rx = rx[:-2] + "(.*/)?"
                i += 1
        elif pat[i] == "*":
            rx += "[^/]*"
            i += 1
        elif pat[i] == "?":
            rx += "[^/]"
            i += 1
        else:
            rx += re.escape(pat[i])
            i += 1
    return re.compile("^" + rx + "$")


def dockerignore_patterns(context):
    """The context's .dockerignore as (negated, regex) pairs, in order."""
    path = os.path.join(context, ".dockerignore")
    pats = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as lines:
            for raw in lines:
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                neg = line.startswith("!")
                pats.append((neg, dockerignore_regex(line[1:] if neg else line)))
    return pats


def ignored(pats, rel):
    rel = os.path.normpath(rel)
    parts = rel.split("/")
    result = False
    for neg, rx in pats:
        for n in range(1, len(parts) + 1):
            if rx.match("/".join(parts[:n])):
                result = not neg
                break
    return result


def parse_flags(value):
    words = value.split()
    flags = {}
    while words and words[0].startswith("--"):
        key, _, val = words.pop(0)[2:].partition("=")
        flags[key] = val
    return flags, " ".join(words)


def check_dockerfile(dockerfile, context):
    from dockerfile_parse import DockerfileParser

    errors = []
    text = read_text(dockerfile)
    try:
        cleaned = strip_heredocs(text)
    except ValueError as e:
        fail("%s: %s" % (dockerfile, e))
    parser = DockerfileParser(fileobj=io.BytesIO(cleaned.encode()))
    structure = parser.structure
    pats = dockerignore_patterns(context)
    stages, args, seen_from = [], {}, False
    final_user, sqlx_offline, uses_cargo = None, False, False
    for ins in structure:
        name, value, line = ins["instruction"], ins["value"], ins["startline"] + 1
        where = "%s:%d" % (dockerfile, line)
        if name == "COMMENT":
            continue
        if name not in INSTRUCTIONS:
            errors.append("%s: unknown instruction %s" % (where, name))
            continue
        if not seen_from and name not in ("ARG", "FROM"):
            errors.append("%s: %s before the first FROM" % (where, name))
        if name == "ARG" and not seen_from:
            k, _, v = value.partition("=")
            args[k.strip()] = v.strip().strip('"')
        if name == "FROM":
            seen_from = True
            flags, rest = parse_flags(value)
            words = rest.split()
            if not words:
                errors.append("%s: FROM without an image" % where)
                continue
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), words[0])
            if not image:
                errors.append("%s: FROM %s names no image (undefined ARG?)" % (where, words[0]))
            alias = None
            if len(words) == 3 and words[1].upper() == "AS":
                alias = words[2]
            elif len(words) != 1:
                errors.append("%s: malformed FROM %r" % (where, value))
            stages.append({"alias": alias, "image": image})
            final_user = None
        if name == "USER":
            final_user = value.split(":")[0].strip()
        if name in ("ENV", "ARG") and re.search(r"\bSQLX_OFFLINE=true\b", value):
            sqlx_offline = True
        if name == "RUN" and re.search(r"\bcargo\s+(build|chef|install)\b", value):
            uses_cargo = True
        if name in ("COPY", "ADD"):
            flags, rest = parse_flags(value)
            if rest.startswith("["):
                try:
                    paths = json.loads(rest)
                except ValueError:
                    errors.append("%s: bad JSON form %r" % (where, rest))
                    continue
            else:
                paths = shlex.split(rest)
            if len(paths) < 2:
                errors.append("%s: %s needs a source and a destination" % (where, name))
                continue
            sources = [p for p in paths[:-1] if not HEREDOC.fullmatch(p)]
            if "from" in flags:
                ref = flags["from"]
                known = [s["alias"] for s in stages[:-1]] + [str(i) for i in range(len(stages) - 1)]
                if ref not in known and ("/" not in ref and ":" not in ref):
                    errors.append("%s: --from=%s is no earlier stage" % (where, ref))
                continue
            for src in sources:
                if re.match(r"^[a-z]+://", src):
                    continue
                rel = os.path.normpath(src.lstrip("/"))
                if rel.startswith(".."):
                    errors.append("%s: %s leaves the build context" % (where, src))
                    continue
                if rel in GENERATED:
                    if ignored(pats, os.path.join(rel, "x")):
                        errors.append("%s: COPY source %s is excluded by .dockerignore" % (where, src))
                    continue
                matches = glob.glob(os.path.join(context, rel))
                if not matches:
                    errors.append("%s: COPY source %s does not exist in the context %s" % (where, src, context))
                    continue
                for m in matches:
                    r = os.path.relpath(m, context)
                    if r != "." and ignored(pats, r):
                        errors.append("%s: COPY source %s is excluded by .dockerignore" % (where, src))
    if not stages:
        errors.append("%s: no FROM" % dockerfile)
    elif len(stages) < 2:
        errors.append("%s: not a multi-stage build" % dockerfile)
    if stages and final_user in (None, "", "root", "0"):
        errors.append("%s: the final stage must switch to a non-root USER" % dockerfile)
    if uses_cargo and not sqlx_offline:
        errors.append("%s: a cargo build must set SQLX_OFFLINE=true" % dockerfile)
    if errors:
        fail("\n".join(errors))
    print(
        "   %s: %d stages (%s), final user %s"
        % (os.path.relpath(dockerfile), len(stages), ", ".join(s["image"] for s in stages), final_user)
    )
