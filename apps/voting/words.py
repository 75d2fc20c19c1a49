"""What a poll guarantees, in words, for its page and the API: the UI states exactly what each
poll promises and what it does not."""

from __future__ import annotations

from apps.voting.shape import PollShape

METHOD_WORDS = {
    "single": "Single choice",
    "approval": "Approval (pick any number)",
    "ranked": "Ranked choice (instant runoff)",
    "score": "Score each option from 0 to 5",
}

RANKED_NAMED = (
    "Ranked and score polls are always named: counting them needs each ballot read as a whole, "
    "which encrypted ballots cannot give without revealing them."
)


def guarantees(shape: PollShape) -> list[str]:
    """Each promise of this poll, one sentence each."""
    said = [
        "Every member's node checks each ballot and counts one ballot per voter; voting again "
        "replaces your ballot until the poll closes.",
        f"Only the {len(shape.electorate)} members who held a voting role when the poll opened "
        "can vote.",
        "When the creator closes the poll, ballots their node had not yet received do not count, "
        "on any node.",
        "Every node computes the result itself; compare the fingerprint of the counted ballots "
        "to check that you all counted the same ones.",
    ]
    if shape.secret:
        said.append(
            f"Secret: ballots are encrypted. No one can read a single ballot unless "
            f"{shape.threshold} of the {len(shape.trustees)} trustees pool their keys; the "
            "trustees only ever decrypt the total. Who voted is visible, not how."
        )
    else:
        said.append(
            "Named: every member's node holds each ballot and who cast it."
            + (
                ""
                if shape.results_visible
                else " Results are hidden on the pages until the close, but members' nodes "
                "hold the ballots."
            )
        )
    if shape.quorum:
        said.append(
            f"The result stands only if at least {shape.quorum} of the "
            f"{len(shape.electorate)} voters vote."
        )
    return said
