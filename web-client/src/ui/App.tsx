import { useEffect, useState } from 'preact/hooks';
import { ChatClient } from '../chat';
import {
  loadCredentials,
  loadSettings,
  saveCredentials,
  saveSettings,
  type Credentials,
  type Settings,
} from '../settings';
import { ConnectionBanner } from './ConnectionBanner';
import { ContactsDialog } from './ContactsDialog';
import { ConversationView } from './ConversationView';
import { GroupInfo } from './GroupInfo';
import { useClient } from './hooks';
import { ChatIcon, PlusIcon } from './icons';
import { NewChatDialog } from './NewChatDialog';
import { SearchDialog } from './SearchDialog';
import { SettingsDialog } from './SettingsDialog';
import { SignIn } from './SignIn';
import { StatusDialog } from './StatusPicker';
import { Sidebar } from './Sidebar';
import { Toasts } from './Toasts';

export function App() {
  const [settings, setSettings] = useState<Settings>(loadSettings);
  const [credentials, setCredentials] = useState<Credentials | null>(loadCredentials);
  const [client, setClient] = useState<ChatClient | null>(null);
  const [signInError, setSignInError] = useState<string | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);

  useEffect(() => {
    if (!credentials) return;
    const c = new ChatClient(credentials, settings);
    const unsubscribe = c.subscribe(() => {
      if (c.authError) {
        // Refused or expired: back to the sign-in form, credentials kept for editing.
        setSignInError(c.authError);
        setCredentials(null);
      }
    });
    setClient(c);
    c.start();
    return () => {
      unsubscribe();
      c.stop();
      setClient(null);
    };
    // Only new credentials make a new client; settings are applied to the running one.
  }, [credentials]);

  const signIn = (creds: Credentials) => {
    saveCredentials(creds);
    setSignInError(null);
    setCredentials(creds);
  };

  const signOut = () => {
    saveCredentials(null);
    setSettingsOpen(false);
    setCredentials(null);
  };

  const save = (next: Settings) => {
    saveSettings(next);
    setSettings(next);
    client?.applySettings(next);
    setSettingsOpen(false);
  };

  const settingsDialog = settingsOpen && (
    <SettingsDialog
      settings={settings}
      client={client}
      onSave={save}
      onSignOut={signOut}
      onClose={() => setSettingsOpen(false)}
    />
  );

  if (!credentials || !client) {
    return (
      <>
        <SignIn
          initial={loadCredentials()}
          error={signInError}
          onSubmit={signIn}
          onSettings={() => setSettingsOpen(true)}
        />
        {settingsDialog}
      </>
    );
  }
  return (
    <>
      <Chat client={client} onSettings={() => setSettingsOpen(true)} />
      {settingsDialog}
    </>
  );
}

function Chat({ client, onSettings }: { client: ChatClient; onSettings(): void }) {
  useClient(client);
  const [newChat, setNewChat] = useState(false);
  const [searching, setSearching] = useState(false);
  const [contactsOpen, setContactsOpen] = useState(false);
  const [statusOpen, setStatusOpen] = useState(false);
  const [infoOpen, setInfoOpen] = useState(false);
  const open = client.open;
  const showInfo = infoOpen && open?.kind === 'group';
  // A group that went away (left, removed, deleted) takes its open panel with it.
  useEffect(() => {
    if (!open) setInfoOpen(false);
  }, [open]);

  const unread = client.totalUnread();
  const title = `${unread > 0 ? `(${unread}) ` : ''}${open ? `${client.title(open)} · ` : ''}Chat`;
  useEffect(() => {
    document.title = title;
  }, [title]);

  return (
    <div class={`app${open ? ' has-open' : ''}${showInfo ? ' has-info' : ''}`}>
      <h1 class="sr-only">Chat</h1>
      {open && (
        <a class="skip-link" href="#composer-input">
          Skip to message box
        </a>
      )}
      <ConnectionBanner client={client} />
      <div class="layout">
        <Sidebar
          client={client}
          onNewChat={() => setNewChat(true)}
          onSearch={() => setSearching(true)}
          onContacts={() => setContactsOpen(true)}
          onStatus={() => setStatusOpen(true)}
          onSettings={onSettings}
        />
        <main class="pane">
          {open ? (
            <ConversationView client={client} c={open} infoOpen={showInfo} onToggleInfo={() => setInfoOpen(!infoOpen)} />
          ) : (
            <div class="pane-empty">
              <div class="pane-empty-icon" aria-hidden="true">
                <ChatIcon size={36} />
              </div>
              <h2>Welcome, {client.me}</h2>
              <p class="muted">Pick a conversation on the left, or start a new one.</p>
              <button class="btn btn-primary" onClick={() => setNewChat(true)}>
                <PlusIcon size={18} /> New chat
              </button>
            </div>
          )}
        </main>
        {showInfo && open && <GroupInfo key={open.id} client={client} c={open} onClose={() => setInfoOpen(false)} />}
      </div>
      <Toasts client={client} />
      {newChat && <NewChatDialog client={client} onClose={() => setNewChat(false)} />}
      {searching && <SearchDialog client={client} onClose={() => setSearching(false)} />}
      {contactsOpen && <ContactsDialog client={client} onClose={() => setContactsOpen(false)} />}
      {statusOpen && <StatusDialog client={client} onClose={() => setStatusOpen(false)} />}
    </div>
  );
}
