//! `contacts:request`, `contacts:accept`, `contacts:decline`, `contacts:remove` and
//! `contacts`; the `contact` event tells both users' devices of every change.
//!
//! A relation lives in two rosters, changed one after the other ([`Contacts`]). The order
//! of the two steps is chosen so that a node dying between them leaves a state the same
//! request, sent again, completes; and so that a roster entry that shows its owner's
//! presence (`contact`) is only ever written with its owner's consent: the requester's
//! entry when the other accepts, the accepter's own entry last.
//!
//! [`Contacts`]: crate::store::Contacts

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use socketioxide::adapter::Adapter;

use super::{Call, Ctx, presence};
use crate::{
    error::{ChatError, ErrorCode},
    keys::rooms,
    protocol::{
        ContactState::{self, Contact, Incoming, Outgoing},
        PresenceInfo, UserId, events,
    },
    store::ContactChange,
};

/// Most entries per `contacts` page, and the default.
const PAGE_MAX: usize = 100;

/// Every state an entry can be in, none included.
const ANY: [Option<ContactState>; 4] = [None, Some(Contact), Some(Outgoing), Some(Incoming)];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserReq {
    user: UserId,
}

#[derive(Debug, Serialize)]
pub(crate) struct StateRes {
    state: ContactState,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListReq {
    after: Option<UserId>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Entry {
    user: UserId,
    state: ContactState,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence: Option<PresenceInfo>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ListRes {
    contacts: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<UserId>,
}

fn not_yourself(call_user: &UserId, user: &UserId) -> Result<(), ChatError> {
    if call_user == user {
        return Err(ChatError::bad_request("you cannot be your own contact"));
    }
    Ok(())
}

fn full(max: usize) -> ChatError {
    ChatError::new(
        ErrorCode::Conflict,
        format!("your contact list has {max} entries already; remove some first"),
    )
}

/// `contacts:request`: asks `user` to become a contact; accepts instead if they asked first.
pub(crate) async fn request<A: Adapter>(
    call: Call<A>,
    req: UserReq,
) -> Result<StateRes, ChatError> {
    let (ctx, me, them) = (&*call.ctx, &call.user, &req.user);
    not_yourself(me, them)?;
    let blocks = &ctx.stores.blocks;
    if blocks.is_blocked(them, me).await? || blocks.is_blocked(me, them).await? {
        return Err(ChatError::forbidden("you cannot send this user a request"));
    }
    let (contacts, max) = (&ctx.stores.contacts, ctx.limits.contacts_per_user);
    // My entry first: a request sent again completes the other side.
    match contacts
        .set_contact(me, them, &[None, Some(Outgoing)], Some(Outgoing), max)
        .await?
    {
        ContactChange::Full => return Err(full(max)),
        ContactChange::Unexpected(Some(Contact)) => return Ok(StateRes { state: Contact }),
        ContactChange::Unexpected(_) => {
            // They asked first: this request is an acceptance.
            accept_steps(&call, them).await?;
            return Ok(StateRes { state: Contact });
        }
        ContactChange::Done(_) => {}
    }
    match contacts
        .set_contact(them, me, &[None, Some(Incoming)], Some(Incoming), max)
        .await?
    {
        ContactChange::Done(_) => {
            tell(&call, me, them, Some(Outgoing)).await;
            tell(&call, them, me, Some(Incoming)).await;
            Ok(StateRes { state: Outgoing })
        }
        ContactChange::Full => {
            contacts
                .set_contact(me, them, &[Some(Outgoing)], None, max)
                .await?;
            Err(ChatError::new(
                ErrorCode::Conflict,
                "this user cannot take more contact requests",
            ))
        }
        ContactChange::Unexpected(_) => {
            // They asked me meanwhile (`outgoing`), or still count me as a contact from
            // before (`contact`): both of us want it.
            contacts
                .set_contact(
                    them,
                    me,
                    &[Some(Outgoing), Some(Contact)],
                    Some(Contact),
                    max,
                )
                .await?;
            contacts
                .set_contact(
                    me,
                    them,
                    &[Some(Outgoing), Some(Contact)],
                    Some(Contact),
                    max,
                )
                .await?;
            tell(&call, me, them, Some(Contact)).await;
            tell(&call, them, me, Some(Contact)).await;
            Ok(StateRes { state: Contact })
        }
    }
}

/// `contacts:accept`: the caller accepts `user`'s request.
pub(crate) async fn accept<A: Adapter>(call: Call<A>, req: UserReq) -> Result<(), ChatError> {
    not_yourself(&call.user, &req.user)?;
    let state = call
        .ctx
        .stores
        .contacts
        .contact_states(&[(call.user.clone(), req.user.clone())])
        .await?;
    match state.first().copied().flatten() {
        Some(Contact) => Ok(()),
        Some(Incoming) => accept_steps(&call, &req.user).await,
        _ => Err(ChatError::not_found("no request from this user")),
    }
}

/// The caller's entry for `them` says `incoming`: their entry becomes `contact`, then the
/// caller's, and both are told.
async fn accept_steps<A: Adapter>(call: &Call<A>, them: &UserId) -> Result<(), ChatError> {
    let (ctx, me) = (&*call.ctx, &call.user);
    let (contacts, max) = (&ctx.stores.contacts, ctx.limits.contacts_per_user);
    let theirs = contacts
        .set_contact(
            them,
            me,
            &[Some(Outgoing), Some(Contact)],
            Some(Contact),
            max,
        )
        .await?;
    if let ContactChange::Unexpected(_) = theirs {
        // They withdrew the request.
        contacts
            .set_contact(me, them, &[Some(Incoming)], None, max)
            .await?;
        tell(call, me, them, None).await;
        return Err(ChatError::not_found("this user withdrew the request"));
    }
    contacts
        .set_contact(
            me,
            them,
            &[Some(Incoming), Some(Contact)],
            Some(Contact),
            max,
        )
        .await?;
    tell(call, me, them, Some(Contact)).await;
    tell(call, them, me, Some(Contact)).await;
    Ok(())
}

/// `contacts:decline`: the caller turns down `user`'s request.
pub(crate) async fn decline<A: Adapter>(call: Call<A>, req: UserReq) -> Result<(), ChatError> {
    let (ctx, me, them) = (&*call.ctx, &call.user, &req.user);
    not_yourself(me, them)?;
    let (contacts, max) = (&ctx.stores.contacts, ctx.limits.contacts_per_user);
    match contacts
        .set_contact(me, them, &[Some(Incoming)], None, max)
        .await?
    {
        ContactChange::Done(_) => {}
        _ => return Err(ChatError::not_found("no request from this user")),
    }
    contacts
        .set_contact(them, me, &[Some(Outgoing)], None, max)
        .await?;
    tell(&call, me, them, None).await;
    tell(&call, them, me, None).await;
    Ok(())
}

/// `contacts:remove`: ends a contact, withdraws a request or turns one down. Removing
/// someone not in the roster is `ok`.
pub(crate) async fn remove<A: Adapter>(call: Call<A>, req: UserReq) -> Result<(), ChatError> {
    not_yourself(&call.user, &req.user)?;
    sever(&call, &req.user).await
}

/// Clears both entries between the caller and `them`, the caller's first (their presence
/// stops reaching `them` at once), and tells both if anything was there. Also what a block
/// does to a contact.
pub(crate) async fn sever<A: Adapter>(call: &Call<A>, them: &UserId) -> Result<(), ChatError> {
    let (ctx, me) = (&*call.ctx, &call.user);
    let (contacts, max) = (&ctx.stores.contacts, ctx.limits.contacts_per_user);
    let mine = contacts.set_contact(me, them, &ANY, None, max).await?;
    let theirs = contacts.set_contact(them, me, &ANY, None, max).await?;
    if mine != ContactChange::Done(None) {
        tell(call, me, them, None).await;
    }
    if theirs != ContactChange::Done(None) {
        tell(call, them, me, None).await;
    }
    Ok(())
}

/// `contacts`: the caller's roster, sorted by user, with each contact's presence where the
/// contact lets the caller see it.
pub(crate) async fn list<A: Adapter>(call: Call<A>, req: ListReq) -> Result<ListRes, ChatError> {
    let limit = req.limit.unwrap_or(PAGE_MAX);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ChatError::bad_request(format!(
            "limit must be 1 to {PAGE_MAX}"
        )));
    }
    let ctx = &*call.ctx;
    let mut page = ctx
        .stores
        .contacts
        .roster(&call.user, req.after.as_ref(), limit + 1)
        .await?;
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page[limit - 1].0.clone()
    });
    let accepted: Vec<UserId> = page
        .iter()
        .filter(|(_, s)| *s == Contact)
        .map(|(u, _)| u.clone())
        .collect();
    let shown = presence::visible(ctx, &call.user, &accepted).await?;
    let states = super::status::infos(ctx, &accepted).await?;
    let mut seen = accepted
        .into_iter()
        .zip(shown.into_iter().zip(states))
        .filter(|(_, (shown, _))| *shown)
        .map(|(u, (_, p))| (u, p))
        .collect::<std::collections::HashMap<_, _>>();
    let contacts = page
        .into_iter()
        .map(|(user, state)| Entry {
            presence: seen.remove(&user),
            user,
            state,
        })
        .collect();
    Ok(ListRes { contacts, next })
}

/// Tells `to`'s devices that their entry for `about` is now `state` (`None`: gone), with
/// `about`'s presence once they are contacts and `about` lets `to` see it.
async fn tell<A: Adapter>(
    call: &Call<A>,
    to: &UserId,
    about: &UserId,
    state: Option<ContactState>,
) {
    let ctx = &*call.ctx;
    let mut payload =
        json!({ "user": about, "state": state.map_or(Value::from("none"), |s| json!(s)) });
    if state == Some(Contact) {
        match contact_presence(ctx, to, about).await {
            Ok(Some(p)) => payload["presence"] = json!(p),
            Ok(None) => {}
            Err(e) => tracing::warn!(user = %about, cause = %e, "cannot read presence"),
        }
    }
    if let Err(e) = call
        .socket
        .within(rooms::user(to))
        .emit(events::CONTACT, &payload)
        .await
    {
        tracing::warn!(user = %to, cause = %e, "cannot send a contact event");
    }
}

async fn contact_presence(
    ctx: &Ctx,
    viewer: &UserId,
    of: &UserId,
) -> Result<Option<PresenceInfo>, crate::error::StoreError> {
    let who = std::slice::from_ref(of);
    if !presence::visible(ctx, viewer, who).await?[0] {
        return Ok(None);
    }
    Ok(super::status::infos(ctx, who).await?.pop())
}
