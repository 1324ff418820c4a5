package msgraph

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/switchboard-voice/switchboard/sdk"
)

// An unmodified msgraph-sdk-go bot answers an incoming call with
// appHostedMediaConfig; the media socket, opened before answering,
// carries the caller's audio as 20 ms frames, and the call reads back
// with the blob as the bot sent it.
func TestAppHostedMedia(t *testing.T) {
	client, _ := botClient(t)
	ctx := testCtx(t)
	var l leg
	simulator(t, http.MethodPost, "/calls", map[string]string{"from": alicePhone, "to": botNumber}, &l)
	item := client.Communications().Calls().ByCallId(l.CallID)
	t.Cleanup(func() { _ = item.Delete(t.Context(), nil) })
	waitCall(t, l.CallID, "incoming", func(changeType string, c models.Callable) bool { return changeType == "created" })

	bot, err := sdk.NewClient(sdk.ClientOptions{BaseURL: env.public + "/v1.0", TenantID: tenantID, ClientID: appID, ClientSecret: appSecret})
	if err != nil {
		t.Fatal(err)
	}
	m, err := bot.OpenMedia(ctx, l.CallID, &sdk.MediaOptions{NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	body := communications.NewCallsItemAnswerPostRequestBody()
	body.SetCallbackUri(ptr(env.hook.URL + "/callback"))
	body.SetAcceptedModalities([]models.Modality{models.AUDIO_MODALITY})
	mc := models.NewAppHostedMediaConfig()
	mc.SetBlob(ptr("<media session configuration>"))
	body.SetMediaConfig(mc)
	if err := item.Answer().Post(ctx, body, nil); err != nil {
		t.Fatal(describe(err))
	}
	waitState(t, l.CallID, models.ESTABLISHED_CALLSTATE)

	var f sdk.MediaFrame
	frames := 0
	for frames < 25 {
		if err := m.ReadFrame(&f); err != nil {
			t.Fatalf("after %d frames: %v", frames, err)
		}
		if f.SourceID == 0 {
			frames++
		}
	}

	c, err := item.Get(ctx, nil)
	if err != nil {
		t.Fatal(describe(err))
	}
	got, ok := c.GetMediaConfig().(models.AppHostedMediaConfigable)
	if !ok || val(got.GetBlob()) != "<media session configuration>" {
		t.Errorf("mediaConfig read back as %T %+v", c.GetMediaConfig(), got)
	}

	if err := item.Delete(ctx, nil); err != nil {
		t.Fatal(describe(err))
	}
	deadline := time.After(10 * time.Second)
	for {
		err := m.ReadFrame(&f)
		if err == nil {
			select {
			case <-deadline:
				t.Fatal("frames still coming after the hang-up")
			default:
			}
			continue
		}
		if !errors.Is(err, sdk.ErrCallEnded) && m.Result() == nil {
			t.Errorf("the socket ended with %v and no result", err)
		}
		break
	}
	if r := m.Result(); r == nil || r.Code != 200 {
		t.Errorf("bye resultInfo %+v", r)
	}
}
