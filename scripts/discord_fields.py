"""Compare gateway_proto.payloads with the field tables of Discord's documentation.

Usage (a checkout of github.com/discord/discord-api-docs, any revision)::

    git clone --depth 1 https://github.com/discord/discord-api-docs /tmp/discord-api-docs
    python scripts/discord_fields.py /tmp/discord-api-docs            # differences
    python scripts/discord_fields.py /tmp/discord-api-docs --dump     # every table

For each documented structure in :data:`STRUCTURES`, it lists fields the
documentation has and the TypedDict lacks (``+``), fields the TypedDict has and
the documentation does not (``-``), and fields whose optional (``?``) or nullable
(``?type``) marks disagree (``~``). Exit status 1 when anything differs. Fields
the gateway adds to an object (MESSAGE_CREATE's ``guild_id``, ...) come from the
event's own "Extra Fields" table, so list both tables for such a type.
"""

from __future__ import annotations

import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from gateway_proto import payloads  # noqa: E402

_GW = "developers/events/gateway-events.mdx"
_RES = "developers/resources/"

#: TypedDict name -> (documentation file, table heading) pairs it follows.
STRUCTURES: dict[str, list[tuple[str, str]]] = {
    "User": [(_RES + "user.mdx", "User Structure")],
    "Member": [(_RES + "guild.mdx", "Guild Member Structure")],
    "Role": [("developers/topics/permissions.mdx", "Role Structure")],
    "Emoji": [(_RES + "emoji.mdx", "Emoji Structure")],
    "Sticker": [(_RES + "sticker.mdx", "Sticker Structure")],
    "Guild": [(_RES + "guild.mdx", "Guild Structure")],
    "GuildCreate": [
        (_RES + "guild.mdx", "Guild Structure"),
        (_GW, "Guild Create Extra Fields"),
    ],
    "Channel": [(_RES + "channel.mdx", "Channel Structure")],
    "ThreadMember": [(_RES + "channel.mdx", "Thread Member Structure")],
    "VoiceState": [(_RES + "voice.mdx", "Voice State Structure")],
    "StageInstance": [(_RES + "stage-instance.mdx", "Stage Instance Structure")],
    "ScheduledEvent": [(_RES + "guild-scheduled-event.mdx", "Guild Scheduled Event Structure")],
    "SoundboardSound": [(_RES + "soundboard.mdx", "Soundboard Sound Structure")],
    "AutoModerationRule": [(_RES + "auto-moderation.mdx", "Auto Moderation Rule Structure")],
    "Entitlement": [(_RES + "entitlement.mdx", "Entitlement Structure")],
    "Subscription": [(_RES + "subscription.mdx", "Subscription Object")],
    "Integration": [(_RES + "guild.mdx", "Integration Structure")],
    "Message": [
        (_RES + "message.mdx", "Message Structure"),
        (_GW, "Message Create Extra Fields"),
    ],
    "Attachment": [(_RES + "message.mdx", "Attachment Structure")],
    "Embed": [(_RES + "message.mdx", "Embed Structure")],
    "Poll": [(_RES + "poll.mdx", "Poll Object Structure")],
    "Interaction": [
        ("developers/interactions/receiving-and-responding.mdx", "Interaction Structure")
    ],
    "Activity": [(_GW, "Activity Structure")],
    "Presence": [(_GW, "Presence Update Event Fields")],
    "Ready": [(_GW, "Ready Event Fields")],
    "IdentifyCommand": [(_GW, "Identify Structure")],
    "ResumeCommand": [(_GW, "Resume Structure")],
    "RequestGuildMembersCommand": [(_GW, "Request Guild Members Structure")],
    "RequestSoundboardSoundsCommand": [(_GW, "Request Soundboard Sounds Structure")],
    "RequestChannelInfoCommand": [(_GW, "Request Channel Info Structure")],
    "UpdateVoiceStateCommand": [(_GW, "Gateway Voice State Update Structure")],
    "UpdatePresenceCommand": [(_GW, "Gateway Presence Update Structure")],
    "RateLimited": [(_GW, "Rate Limited Fields")],
    "ApplicationCommandPermissions": [
        (
            "developers/interactions/application-commands.mdx",
            "Guild Application Command Permissions Structure",
        )
    ],
    "ChannelInfo": [(_GW, "Channel Info Structure")],
    "GuildAuditLogEntryCreate": [
        (_RES + "audit-log.mdx", "Audit Log Entry Structure"),
        (_GW, "Guild Audit Log Entry Create Event Extra Fields"),
    ],
    "GuildIntegration": [
        (_RES + "guild.mdx", "Integration Structure"),
        (_GW, "Integration Create Event Additional Fields"),
    ],
    "GuildMemberAdd": [
        (_RES + "guild.mdx", "Guild Member Structure"),
        (_GW, "Guild Member Add Extra Fields"),
    ],
    "MessagePollVote": [(_GW, "Message Poll Vote Add Fields")],
    "ThreadMemberUpdate": [
        (_RES + "channel.mdx", "Thread Member Structure"),
        (_GW, "Thread Member Update Event Extra Fields"),
    ],
    "VoiceChannelStartTimeUpdate": [(_GW, "Voice Channel Start Time Update")],
    "VoiceChannelStatusUpdate": [(_GW, "Voice Channel Status Update")],
    # Documented in prose only (no field table).
    "Resumed": [],
    "ThreadDelete": [],
    "UnavailableGuild": [],
}

#: Deliberate differences: (type, field) pairs the comparison does not report.
ALLOWED = {
    # THREAD_CREATE's extra flag, documented in prose; the type is shared with channels.
    ("Channel", "newly_created"),
    # Required only with ``query``; a request by ``user_ids`` leaves it out.
    ("RequestGuildMembersCommand", "limit"),
}
# Every event with its own field table in gateway-events.mdx.
for _name, _type in payloads.DISPATCH_EVENTS.items():
    _cls = getattr(payloads, _type).__name__
    _title = _name.replace("_", " ").title()
    STRUCTURES.setdefault(_cls, [(_GW, f"{_title} Event Fields")])


def tables(text: str) -> Iterator[tuple[str, list[list[str]]]]:
    """Yield (heading, rows) for each Markdown table whose first column is "Field"."""
    heading: str = ""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if header is None:
                header, rows = cells, []
            elif not set(cells[0]) <= set("-: "):
                rows.append(cells)
        elif header is not None:
            if header[0].lower() == "field":
                yield heading, rows
            header = None


def documented(row: list[str]) -> tuple[str, bool, bool]:
    """Return (name, optional, nullable) of one table row."""
    raw = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", row[0]).replace("\\", "")
    name = re.match(r"[a-z_0-9]+", raw.strip())
    kind = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", row[1]) if len(row) > 1 else ""
    return (name.group(0) if name else raw), "?" in raw, kind.strip().startswith("?")


def ours(cls: type) -> dict[str, tuple[bool, bool]]:
    """Return the TypedDict's fields as name -> (optional, nullable)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for name, hint in hints.items():
        args = typing.get_args(hint)
        nullable = type(None) in args
        out[name] = (name in cls.__optional_keys__, nullable)  # type: ignore[attr-defined]
    return out


def main(argv: list[str]) -> int:
    """Print differences (or every table with ``--dump``); 1 if anything differs."""
    docs = Path(argv[0])
    cache: dict[str, dict[str, list[list[str]]]] = {}
    if "--dump" in argv:
        for path in sorted({p for pairs in STRUCTURES.values() for p, _ in pairs}):
            for heading, rows in tables((docs / path).read_text()):
                print(f"## {path} :: {heading}")
                for row in rows:
                    print("   ", *documented(row))
        return 0
    differs = False
    for type_name, sources in sorted(STRUCTURES.items()):
        if not sources:
            continue
        fields: dict[str, tuple[bool, bool]] = {}
        for path, heading in sources:
            if path not in cache:
                cache[path] = dict(tables((docs / path).read_text()))
            found = cache[path].get(heading)
            if found is None:
                print(f"{type_name}: no table {heading!r} in {path}")
                differs = True
                continue
            for row in found:
                name, optional, nullable = documented(row)
                fields[name] = (optional, nullable)
        have = ours(getattr(payloads, type_name))
        report = []
        report += [f"+ {name}" for name in sorted(fields.keys() - have.keys())]
        report += [f"- {name}" for name in sorted(have.keys() - fields.keys())]
        report += [
            f"~ {name} docs (optional, nullable)={fields[name]}"
            for name in sorted(fields.keys() & have.keys())
            if fields[name] != have[name]
        ]
        for line in report:
            if (type_name, line[2:].split()[0]) not in ALLOWED:
                print(f"{type_name}: {line}")
                differs = True
    return 1 if differs else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
