"""Scope helpers and role checks: how far an admitted role reaches, and who is read-only."""

from typing import Any

import pytest

from shared.web.auth import (
    ALL_ROLES,
    READ_ONLY_ROLES,
    AuthHTTPError,
    Principal,
    Role,
    ensure_donor_access,
    ensure_may_write,
    ensure_recipient_access,
    ensure_role,
    ensure_site_access,
    require_roles,
)

# --- scope helpers ----------------------------------------------------------------------------------------


def status_of(check: Any, *args: Any) -> int:
    try:
        check(*args)
    except AuthHTTPError as refused:
        return refused.status_code
    return 200


def test_site_access_limits_operators_and_dispatchers_to_their_sites() -> None:
    operator = Principal("li.wei", Role.operator, sites=frozenset({"wh-wuhan-1"}))
    dispatcher = Principal("zhao", Role.dispatcher, sites=frozenset({"wh-xian-2"}))

    assert status_of(ensure_site_access, operator, "wh-wuhan-1") == 200
    assert status_of(ensure_site_access, operator, "wh-xian-2") == 403
    assert status_of(ensure_site_access, dispatcher, "wh-xian-2") == 200
    assert status_of(ensure_site_access, dispatcher, "wh-wuhan-1") == 403
    assert status_of(ensure_site_access, Principal("root", Role.admin), "wh-anywhere") == 200
    assert status_of(ensure_site_access, Principal("eve", Role.auditor), "wh-anywhere") == 200


def test_site_refusal_says_which_sites_the_token_has() -> None:
    operator = Principal("li.wei", Role.operator, sites=frozenset({"wh-wuhan-1"}))

    with pytest.raises(AuthHTTPError) as caught:
        ensure_site_access(operator, "wh-xian-2")

    assert caught.value.code == "forbidden"
    assert "operator:li.wei may not act on site 'wh-xian-2'" in caught.value.message
    assert "wh-wuhan-1" in caught.value.message
    assert "--site wh-xian-2" in caught.value.message


def test_recipient_access_limits_recipient_staff_to_their_own_recipient() -> None:
    nurse = Principal("chen", Role.recipient_staff, recipient_id="hosp-7")
    unscoped_nurse = Principal("chen", Role.recipient_staff)

    assert status_of(ensure_recipient_access, nurse, "hosp-7") == 200
    assert status_of(ensure_recipient_access, nurse, "hosp-8") == 403
    assert status_of(ensure_recipient_access, unscoped_nurse, "hosp-7") == 403
    assert status_of(ensure_recipient_access, Principal("root", Role.admin), "hosp-8") == 200
    with pytest.raises(AuthHTTPError) as caught:
        ensure_recipient_access(unscoped_nurse, "hosp-7")
    assert "mint it with `--recipient`" in caught.value.message


def test_donor_access_limits_donors_to_their_own_pledges() -> None:
    donor = Principal("acme", Role.donor, donor_id="donor-3")

    assert status_of(ensure_donor_access, donor, "donor-3") == 200
    assert status_of(ensure_donor_access, donor, "donor-4") == 403
    assert status_of(ensure_donor_access, Principal("root", Role.admin), "donor-4") == 200


def test_scope_helpers_only_restrict_the_roles_scoped_along_their_dimension() -> None:
    """So that a route open to donors and operators can apply both checks without locking either out."""
    donor = Principal("acme", Role.donor, donor_id="donor-3")
    operator = Principal("li.wei", Role.operator, sites=frozenset({"wh-wuhan-1"}))

    assert status_of(ensure_site_access, donor, "wh-wuhan-1") == 200
    assert status_of(ensure_donor_access, operator, "donor-3") == 200


def test_role_checks_let_admin_through_and_keep_auditors_read_only() -> None:
    auditor = Principal("eve", Role.auditor)

    assert status_of(ensure_role, Principal("root", Role.admin), [Role.donor], "POST /pledges") == 200
    assert status_of(ensure_role, auditor, [Role.donor], "POST /pledges") == 403
    assert status_of(ensure_may_write, auditor, "POST /pledges") == 403
    assert status_of(ensure_may_write, Principal("acme", Role.donor), "POST /pledges") == 200
    assert set(READ_ONLY_ROLES) == {Role.auditor}
    assert set(ALL_ROLES) == set(Role)


def test_require_roles_refuses_misconfiguration_at_import_time() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_roles()
    with pytest.raises(ValueError, match="unknown role 'operater'"):
        require_roles("operater")
