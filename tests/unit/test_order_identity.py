"""An order id belongs to the account that used it first and is answered once."""

from __future__ import annotations

from shared.order_identity import Resubmission, fingerprint, judge_resubmission
from tools.seed import b2b_order


def judge(
    owner: str | None, known: str | None, ended: bool, account: str, new: str
) -> Resubmission:
    return judge_resubmission(
        owner=owner, known_fingerprint=known, ended=ended, account_id=account, new_fingerprint=new
    )


def test_the_same_content_under_a_new_event_id_is_a_retry() -> None:
    first = b2b_order("o-1", [("BOLT-M8-100", 40)]).order()
    again = b2b_order("o-1", [("BOLT-M8-100", 40)]).order()
    assert fingerprint(first) == fingerprint(again)
    assert judge("acme-gmbh", fingerprint(first), False, "acme-gmbh", fingerprint(again)) is (
        Resubmission.RETRY
    )


def test_other_content_under_a_live_order_id_is_refused_and_the_order_goes_on() -> None:
    first = fingerprint(b2b_order("o-1", [("BOLT-M8-100", 40)]).order())
    other = fingerprint(b2b_order("o-1", [("BOLT-M8-100", 80)]).order())
    assert first != other
    assert judge("acme-gmbh", first, False, "acme-gmbh", other) is Resubmission.DUPLICATE_OF_LIVE


def test_a_correction_of_an_order_rejected_as_unreadable_is_a_duplicate_of_an_ended_order() -> None:
    assert judge("acme-gmbh", None, True, "acme-gmbh", "f") is Resubmission.DUPLICATE_OF_ENDED
    assert judge(None, None, True, "globex-ag", "f") is Resubmission.DUPLICATE_OF_ENDED


def test_another_accounts_order_id_is_foreign_whatever_its_content() -> None:
    assert judge("acme-gmbh", "f", False, "globex-ag", "f") is Resubmission.FOREIGN
    assert judge("acme-gmbh", "f", True, "globex-ag", "g") is Resubmission.FOREIGN
