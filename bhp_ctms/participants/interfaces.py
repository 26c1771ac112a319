"""What other domains plug into the participants' pages.

The participants domain knows nothing of the domains built on it (``crf`` uses
``participants``, never the reverse), yet its worklists show what those domains keep
about each participant: the case report forms' open queries, for one. A domain that
keeps such a count registers an :class:`IParticipantCounts` with
``config.add_participant_counts(...)``; the site's
participant grid shows it as a column and the site dashboard as the site's total,
to the users whose permissions allow it.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IParticipantCounts(Interface):
    """A number another domain keeps for each participant (open queries...)."""

    key = Attribute(
        "A short name of the count, unique among them: the pages' test ids use it "
        "(``open-queries``)."
    )
    heading = Attribute("The grid column's heading (``Open queries``).")
    description = Attribute("What is counted, in a sentence, for the grid's key and the dashboard.")
    singular = Attribute("What one of them is called (``open query``).")
    plural = Attribute("What several are called (``open queries``).")
    permission = Attribute(
        "The permission a user needs, at the site, to see the counts (the page they "
        "link to asks for it too)."
    )
    route_name = Attribute(
        "The route of the site's page listing what is counted; its path is made with "
        "the study's code and the site's code (``code=...``, ``site=...``)."
    )

    def count(db, participants):
        """How many there are for each participant whose id the select
        ``participants`` gives: a mapping from participant id to count (one with
        none may be left out), read in one grouped query that uses ``participants``
        as a subquery, whatever their number; never one query per participant.

        ``participants`` has been kept to the user's sites (``SiteScope.apply``):
        the count must not look at other participants.
        """

    def describe(number):
        """``number`` of them in words: ``1 open query``, ``3 open queries``."""
