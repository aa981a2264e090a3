from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, User
from django.core.management import call_command


def test_it_seeds_roles_and_demo_users(db):
    call_command("seed", password="demo-pass-123")
    assert set(Group.objects.values_list("name", flat=True)) >= {"supervisor", "finance"}
    assert authenticate(username="supervisor", password="demo-pass-123")
    assert User.objects.get(username="supervisor").groups.filter(name="supervisor").exists()
    assert User.objects.get(username="finance").groups.filter(name="finance").exists()
    assert not User.objects.get(username="requester").groups.exists()
    assert User.objects.get(username="admin").is_superuser
    assert User.objects.get(username="integrator").has_perm("missions.add_event")


def test_it_is_idempotent_when_run_twice(db):
    call_command("seed", password="demo-pass-123")
    counts = (User.objects.count(), Group.objects.count())
    call_command("seed", password="demo-pass-123")
    assert (User.objects.count(), Group.objects.count()) == counts
    assert User.objects.get(username="finance").groups.count() == 1
